"""How every list page reads its rows, screens and REST API alike: one place that FAB's
`SQLAInterface.query` is replaced in.

A page costs what its rows cost, not what the table holds:

- the count is bounded: it reads at most `COUNT_LIMIT + 1` rows of the filtered query, and a
  total above that is shown as "more than 10 000". An unfiltered list of a table the planner
  (PostgreSQL) estimates at well over the bound is not counted at all: it shows the estimate
  ("about 1 000 000");
- "the page's ids first, join after": the page's primary keys are selected on the list's own
  table (filters, order, offset and limit, no relation joined unless the order or a filter
  needs one), and only those rows are then loaded with their relations. The `lazy="joined"`
  chains of the models therefore run for the page's rows, never for the rows OFFSET skips;
- the statements per page are the same whatever the page size: count, ids, rows, and the
  relations' selectin loads;
- deep pages are read by keyset (`Keyset`): the rows after the last row of the previous page,
  in the list's order, so page 1000 costs what page 1 does.
"""

from math import ceil

from flask import flash, request, url_for
from flask_appbuilder.models.filters import BaseFilter
from flask_appbuilder.models.sqla.filters import (
    FilterRelationOneToManyEqual,
    FilterStartsWith,
    SQLAFilterConverter,
    get_field_setup_query,
)
from flask_appbuilder.widgets import RenderTemplateWidget, SearchWidget
from flask_babel import get_locale, gettext
from flask_babel import lazy_gettext as _l
from markupsafe import Markup, escape
from sqlalchemy import false, func, select, text, tuple_
from sqlalchemy.orm import MANYTOONE
from wtforms import StringField

from app import labels
from app.access import AccessInterface

COUNT_LIMIT = 10_000


def thousands(number: int) -> str:
    """10000 -> '10 000' (Swedish digit groups, a no-break space)."""
    return f"{number:,}".replace(",", "\u00a0")


class ListCount(int):
    """A list's total: exact up to COUNT_LIMIT, above that a lower bound or an estimate. The
    number itself works for paging (FAB's templates divide it by the page size); shown in a
    page it reads "more than 10 000" or "about N"."""

    def __new__(cls, value, exact=True, estimated=False):
        count = super().__new__(cls, value)
        count.exact = exact
        count.estimated = estimated
        # Set by the list's query: the key the next page starts after and the key the
        # previous page ends before (None: no such page).
        count.next_after = None
        count.previous_before = None
        return count

    def __str__(self):
        if self.exact:
            return thousands(int(self))
        if self.estimated:
            return gettext("about %(count)s", count=thousands(int(self)))
        return gettext("more than %(count)s", count=thousands(COUNT_LIMIT))

    def __html__(self):
        return str(escape(str(self)))

    def as_dict(self) -> dict:
        """The API's words for it: `count` and whether it is exact."""
        return {"count": int(self), "count_exact": self.exact}


def bounded_count(session, ids_query, table_name=None) -> ListCount:
    """Count the rows of `ids_query` (no ORDER BY), reading at most COUNT_LIMIT + 1 of them.
    With `table_name` (an unfiltered list) on PostgreSQL a table the planner estimates well
    above the bound is not counted at all: its total is the estimate."""
    if table_name and session.get_bind().dialect.name == "postgresql":
        estimate = session.execute(
            text("SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(:name)"),
            {"name": table_name},
        ).scalar()
        if estimate and estimate > 2 * COUNT_LIMIT:
            return ListCount(estimate, exact=False, estimated=True)
    limited = ids_query.order_by(None).limit(COUNT_LIMIT + 1).subquery()
    count = session.execute(select(func.count()).select_from(limited)).scalar_one()
    if count <= COUNT_LIMIT:
        return ListCount(count)
    return ListCount(COUNT_LIMIT + 1, exact=False)


def in_id_order(rows, ids, key):
    position = {pk: index for index, pk in enumerate(ids)}
    return sorted(rows, key=lambda row: position[key(row)])


class Keyset:
    """Keyset ("cursor") paging in one order: `keys` are the order's expressions, the primary
    key last as the tie-breaker, all in one direction (as FAB and the access policy order).

    The cursor is the key of the last row of a page (`after=<id>`). Its place in the order is
    read from the database with the same expressions the page is ordered by, so a protected
    person's name is the mask there too, and through the list's scope only, so a cursor names a
    position among the rows the login may see and never carries personal data. Rows inserted
    during a walk neither repeat nor push rows off a page."""

    def __init__(self, keys, descending=False):
        self.keys = list(keys)
        self.descending = descending

    def anchor(self, session, scope, after):
        """The order's values of the row `after` among `scope` (a select of the list's rows with
        its row-level conditions only, not the client's filters: a row that leaves a filtered
        list during the walk still marks its place), or None when it is not such a row."""
        query = scope.with_only_columns(*self.keys).where(self.keys[-1] == after)
        row = session.execute(query).first()
        return tuple(row) if row else None

    def following(self, query, anchor):
        """`query` narrowed to the rows after `anchor` in the order."""
        row, position = tuple_(*self.keys), tuple_(*anchor)
        return query.where(row < position if self.descending else row > position)

    def preceding(self, query, anchor):
        """`query` narrowed to the rows before `anchor` in the order."""
        row, position = tuple_(*self.keys), tuple_(*anchor)
        return query.where(row > position if self.descending else row < position)


class KeysetPage(int):
    """FAB's `page` argument for a page read by keyset: the page of the rows after `anchor`
    (the order's values of the previous page's last row), or with `backward` the page of the
    rows before it (the next page's first row). Its number is the page's number as shown
    (0 for the API, which shows none); FAB's own code reads it as the page number."""

    def __new__(cls, anchor, backward=False, number=0):
        page = super().__new__(cls, number)
        page.anchor = anchor
        page.backward = backward
        return page


class CodeStartsWith(FilterStartsWith):
    """"Starts with" on a code column (status, reason, channel, type): a whole code, as the
    search form's choice list sends it, is compared for equality, which the column's index
    answers (ILIKE 'code%' reads every row); other text is a prefix as before. No code is a
    prefix of another, so the rows found are the same. A group's code (the interface's
    `code_groups`, e.g. "out" for every open status) stands for its codes."""

    def apply(self, query, value):
        group = self.datamodel.code_groups.get(self.column_name, {}).get(value)
        if group:
            query, field = get_field_setup_query(query, self.model, self.column_name)
            return query.filter(field.in_(group))
        if value in self.datamodel.code_values(self.column_name):
            query, field = get_field_setup_query(query, self.model, self.column_name)
            return query.filter(field == value)
        return super().apply(query, value)


class RelationKeyEqual(FilterRelationOneToManyEqual):
    """"Relation" on a many-to-one: the foreign key column compared with the key the link
    carries. FAB's own reads the related row first, once for the count and once more for the
    page (its key arrives as text, which the session's identity map does not know). A key that
    is no number finds nothing."""

    def apply(self, query, value):
        relation = getattr(self.model, self.column_name).property
        columns = list(relation.local_columns)
        if relation.direction is not MANYTOONE or len(columns) != 1:
            return super().apply(query, value)
        try:
            key = columns[0].type.python_type(value)
        except (TypeError, ValueError, NotImplementedError):
            return query.filter(false())
        return query.filter(columns[0] == key)


class CodeFilterConverter(SQLAFilterConverter):
    """FAB's filters, with "starts with" on the interface's code columns equality for a whole
    code, and "relation" a comparison of the foreign key (the filters' order, and so
    `_flt_<n>_` in links, stays FAB's)."""

    def convert(self, col_name):
        found = super().convert(col_name)
        if found and col_name in self.datamodel.code_columns:
            found = [CodeStartsWith(col_name, self.datamodel)
                     if type(item) is FilterStartsWith else item for item in found]
        if found:
            found = [RelationKeyEqual(col_name, self.datamodel)
                     if type(item) is FilterRelationOneToManyEqual else item for item in found]
        return found


class ListInterface(AccessInterface):
    """The access policy's interface (searches, order and shown values as the login may see
    them) whose list query pages by ids first and counts with a bound. Optional
    `load_options` (e.g. `selectinload(Unit.parent)`) load more relations with the page;
    `code_columns` (column -> labels kind) are the code columns whose filter by a whole code
    is an equality; `code_groups` (column -> {code: codes}) the choices that stand for
    several codes."""

    filter_converter_class = CodeFilterConverter

    def __init__(self, obj, *load_options, session=None, code_columns=None, code_groups=None):
        super().__init__(obj, *load_options, session=session)
        self.code_columns = dict(code_columns or {})
        self.code_groups = dict(code_groups or {})

    def code_values(self, column) -> set:
        kind = self.code_columns.get(column)
        return {code for code, _words in labels.choices(kind)} if kind else set()

    def _pk_column(self):
        return getattr(self.obj, self.get_pk_name())

    def keyset(self, order_column="", order_direction="") -> Keyset:
        """Keyset paging in the list's order (by the key, ascending, when it has none). As in
        FAB's order, a direction other than "asc" is descending."""
        return Keyset(self.order_keys(order_column),
                      descending=bool(order_column) and order_direction != "asc")

    def walkable(self, order_column="") -> bool:
        """Whether the list can be paged by keyset in this order: by its key, or by a plain
        column of its own without NULLs (a NULL compares as neither before nor after)."""
        if not order_column or order_column == self.get_pk_name():
            return True
        return order_column in self.list_columns and not self.is_nullable(order_column)

    def keyset_anchor(self, after, scope_filters, order_column="", order_direction=""):
        """Where the row `after` stands in the order, among the rows of `scope_filters` (the
        list's row-level filters); None when it is not one of them."""
        scope = self.apply_filters(self.session.query(self._pk_column()), scope_filters)
        return self.keyset(order_column, order_direction).anchor(
            self.session, scope.statement, after)

    def ids_query(self, filters=None, order_column="", order_direction="", page=None,
                  page_size=None):
        """The query of the page's primary keys: filters, order (with the key as tie-breaker),
        offset (or, for a `KeysetPage`, the rows after its anchor) and limit on the list's own
        table; and whether it reads the page backwards (the rows before the anchor, last
        first)."""
        query = self.session.query(self.obj)
        backward = isinstance(page, KeysetPage) and page.backward
        if isinstance(page, KeysetPage):
            if not order_column:  # an unordered list is walked by its key
                order_column, order_direction = self.get_pk_name(), "asc"
            keyset = self.keyset(order_column, order_direction)
            if backward:  # the rows just before the anchor: read in the opposite order
                query = keyset.preceding(query, page.anchor)
                order_direction = "asc" if keyset.descending else "desc"
            else:
                query = keyset.following(query, page.anchor)
            page = None
        query = self._apply_inner_all(
            query, filters, order_column, order_direction, page,
            page_size, select_columns=None, aliases_mapping={},
        )
        return query.with_entities(self._pk_column()), backward

    def page_ids(self, filters=None, order_column="", order_direction="", page=None,
                 page_size=None) -> list:
        """The page's primary keys, in the list's order."""
        query, backward = self.ids_query(filters, order_column, order_direction, page,
                                         page_size)
        ids = [row[0] for row in query.all()]
        return ids[::-1] if backward else ids

    def count(self, filters=None) -> ListCount:
        query = self.apply_filters(self.session.query(self._pk_column()), filters)
        # Unfiltered: no filter (nor a row-level base filter) added a condition.
        unfiltered = query.whereclause is None
        return bounded_count(self.session, query,
                             self.obj.__tablename__ if unfiltered else None)

    def load_page(self, ids, select_columns=None, outer_default_load=False) -> list:
        """The rows with these keys, in this order, with their relations."""
        if not ids:
            return []
        query = self.session.query(self.obj).filter(self._pk_column().in_(ids))
        if self.load_options:
            query = query.options(*self.load_options)
        if select_columns:
            # FAB's column selection (the REST API's `columns`), on the page's rows only.
            query = self.apply_all(query, None, select_columns=select_columns,
                                   outer_default_load=outer_default_load)
        rows = [getattr(row, self.obj.__name__, row) for row in query.all()]
        pk_name = self.get_pk_name()
        unique = {getattr(row, pk_name): row for row in rows}
        return in_id_order(unique.values(), ids, lambda row: getattr(row, pk_name))

    def _orderable(self, order_column) -> bool:
        """Whether the order is by the list's own columns (then the page's rows are read in
        one statement, joined to their ids' query)."""
        return not order_column or order_column in self.list_columns

    def load_page_of(self, ids_query, order_column="", order_direction="") -> list:
        """The rows whose keys `ids_query` selects, with their relations, in the list's order:
        one statement, joined to the ids' query as a subquery (on the list's own table, so an
        OFFSET walks a narrow index, and the relations are joined for the page's rows only)."""
        keyset = self.keyset(order_column, order_direction)
        order = [key.desc() if keyset.descending else key.asc() for key in keyset.keys]
        page = ids_query.subquery()
        query = self.session.query(self.obj).join(
            page, self._pk_column() == list(page.c)[0]).order_by(*order)
        if self.load_options:
            query = query.options(*self.load_options)
        pk_name = self.get_pk_name()
        return list({getattr(row, pk_name): row for row in query.all()}.values())

    def query(self, filters=None, order_column="", order_direction="", page=None,
              page_size=None, select_columns=None, outer_default_load=False):
        count = self.count(filters)
        if select_columns or not self._orderable(order_column):
            ids = self.page_ids(filters, order_column, order_direction, page, page_size)
            rows = self.load_page(ids, select_columns, outer_default_load)
        else:
            ids_query, _backward = self.ids_query(filters, order_column, order_direction,
                                                  page, page_size)
            rows = self.load_page_of(ids_query, order_column, order_direction)
            ids = [getattr(row, self.get_pk_name()) for row in rows]
        full = bool(page_size) and len(ids) == page_size
        backward = isinstance(page, KeysetPage) and page.backward
        # A full page may have a next one: it starts after this page's last row (a page read
        # backwards has one: the row its cursor named). The previous page ends before this
        # page's first row (a page read backwards that is not full is the list's first).
        count.next_after = ids[-1] if ids and (full or backward) else None
        count.previous_before = ids[0] if ids and (full or not backward) else None
        return count, rows


# --- the screens' pager: previous and next by keyset -------------------------------------------

def list_url(dropped=(), endpoint=None, **args) -> str:
    """The URL of `endpoint` (by default this request's) with this request's arguments, but
    for `dropped` (names) and with `args` set."""
    kept = {key: values for key, values in request.args.lists()
            if key not in dropped and key not in args}
    return url_for(endpoint or request.endpoint, **(request.view_args or {}), **kept, **args)


def page_window(number: int, pages: int, width: int = 3) -> range:
    """The page numbers the pager offers around page `number` (as FAB's pager: `width` on
    each side, more on one side near the start or the end)."""
    low, high = number - width, number + width + 1
    if low < 0:
        high -= low
    if high >= pages:
        low -= high - pages
    return range(max(low, 0), min(high, pages))


class CursorPagerMixin:
    """A list screen whose pager's "previous" and "next" links carry a keyset cursor:
    `after_<View>=<id>` (the rows after the previous page's last row) or `before_<View>=<id>`
    (the rows before the next page's first row), beside `page_<View>`, the page's number as
    shown. Those pages are read by index (`Keyset`), so following "next" to page 1000 costs what
    page 1 does. The numbered links stay FAB's `page_<View>`: an offset, small near the start,
    and a deep one reads only the page's ids on the list's own table (`page_ids`). An order
    whose key may be NULL pages by offset only. A cursor that is no row of the list (the row
    has gone, or the link was another login's) shows the first page with a message."""

    def _get_list_widget(self, filters, order_column="", order_direction="", page=None,
                         page_size=None, **kwargs):
        if not order_column and self.base_order:
            order_column, order_direction = self.base_order
        walkable = self.datamodel.walkable(order_column)
        if walkable:
            page = self._cursor_page(order_column, order_direction, page)
        widgets = super()._get_list_widget(
            filters, order_column=order_column, order_direction=order_direction, page=page,
            page_size=page_size, **kwargs)
        if walkable:
            shown = widgets["list"].template_args
            shown["pager"] = self._pager(shown["count"], int(page or 0), shown["page_size"])
        return widgets

    def _cursor_args(self) -> tuple[str, str, str]:
        name = self.__class__.__name__
        return f"page_{name}", f"after_{name}", f"before_{name}"

    def _cursor_page(self, order_column, order_direction, page):
        """The keyset page the request's cursor names (app.client_input has checked that it
        is a whole number), or `page` when it names none."""
        _page_arg, after_arg, before_arg = self._cursor_args()
        for arg, backward in ((after_arg, False), (before_arg, True)):
            cursor = request.args.get(arg)
            if cursor is None:
                continue
            anchor = self.datamodel.keyset_anchor(int(cursor), self._base_filters,
                                                  order_column, order_direction)
            if anchor is None:
                flash(gettext("The page link no longer points at a row of this list: the "
                              "list is shown from the first page."), "warning")
                return None
            return KeysetPage(anchor, backward=backward, number=page or 0)
        return page

    def _pager(self, count, number: int, page_size: int) -> dict:
        """The pager's links: "first", "previous", the numbered pages around this one,
        "next" and "last"; None where there is no such page (or it is this one)."""
        page_arg, after_arg, before_arg = self._cursor_args()
        cursors = (page_arg, after_arg, before_arg)
        # A page reached by cursor may lie beyond an estimated total.
        pages = max(ceil(int(count) / page_size) if page_size else 1, number + 1)

        def offset(target):
            return list_url(cursors) if target == 0 else list_url(cursors, **{page_arg: target})

        previous = nxt = None
        if number > 0 and count.previous_before is not None:
            previous = offset(0) if number == 1 else list_url(
                cursors, **{page_arg: number - 1, before_arg: count.previous_before})
        if count.next_after is not None and (not count.exact or number + 1 < pages):
            nxt = list_url(cursors, **{page_arg: number + 1, after_arg: count.next_after})
        window = page_window(number, pages)
        return {
            "first": offset(0) if window and window.start > 0 else None,
            "previous": previous,
            "pages": [(target, None if target == number else offset(target))
                      for target in window],
            "next": nxt,
            "last": offset(pages - 1) if window and window.stop < pages else None,
            "shown": pages > 1 or number > 0,
        }


# --- choices looked up as you type --------------------------------------------------------

LOOKUP_LIMIT = 20


def unit_choices(typed: str, allowed_ids=None) -> list[dict]:
    """Select2's answer for the units whose name or HSA-id holds the typed text, by name, at
    most LOOKUP_LIMIT; `allowed_ids` (a select of unit ids) narrows them to the user's."""
    from app.extensions import db
    from models import Unit

    query = select(Unit.id, Unit.name).order_by(Unit.name, Unit.id).limit(LOOKUP_LIMIT)
    typed = (typed or "").strip().lower()
    if typed:
        pattern = "%" + typed.replace("\\", "").replace("%", "").replace("_", "") + "%"
        query = query.where(func.lower(Unit.name).like(pattern)
                            | func.lower(Unit.hsa_id).like(pattern))
    if allowed_ids is not None:
        query = query.where(Unit.id.in_(allowed_ids))
    return [{"id": unit_id, "text": name} for unit_id, name in db.session.execute(query)]


class LookupWidget:
    """A <select> that select2 fills from `endpoint` as the user types (app/static/js/
    lookup.js). Only the chosen option is in the page: the one an active filter names."""

    def __init__(self, endpoint):
        self.endpoint = endpoint

    def __call__(self, field, **kwargs):
        from flask import url_for

        chosen = field.chosen()
        option = (f'<option value="{escape(chosen[0])}" selected>{escape(chosen[1])}</option>'
                  if chosen else '<option value=""></option>')
        return Markup(
            f'<select class="form-control rk-lookup" id="{escape(field.id)}" '
            f'name="{escape(field.name)}" data-lookup="{escape(url_for(self.endpoint))}">'
            f"{option}</select>")


class UnitLookupField(StringField):
    """A unit chosen by looking it up as you type (the value is the unit id)."""

    def __init__(self, label=None, validators=None, lookup_endpoint="", **kwargs):
        super().__init__(label, validators, widget=LookupWidget(lookup_endpoint), **kwargs)

    def chosen(self):
        """(id, name) of the unit an active filter of the page names, or None."""
        from flask import request

        from app.extensions import db
        from models import Unit

        wanted = next((value for key, value in request.args.items()
                       if key.startswith("_flt_") and key.endswith("_" + self.name)), None)
        if not (wanted or "").isdigit():
            return None
        unit = db.session.get(Unit, int(wanted))
        return (unit.id, unit.name) if unit else None


# --- one search box per list -----------------------------------------------------------------

class SearchBoxFilter(BaseFilter):
    """The search box as a filter of the list's query: what app.search finds for the login."""

    name = _l("Search")
    arg_name = "q"

    def apply(self, query, value):
        from app import search

        return query.filter(search.condition(self.model, value))


# A list's search parts that are the same on each of its pages in one language, made once per
# process: (route base, language, columns) -> (labels, conditions, fields rendered).
_SEARCH_PARTS = {}


def _same_on_every_page(field) -> bool:
    """Whether a search field renders alike on every page: not one that shows the page's own
    choice (a unit looked up as you type) nor one whose choices are rows of the database."""
    return not isinstance(field.widget, LookupWidget) and not hasattr(field, "query_func")


class SearchBoxWidget(SearchWidget):
    """FAB's search widget. The filters' labels and conditions, and the fields that render
    alike on every page, are made once per list and language: FAB rendered each field and
    translated each word again on every page (a tenth of a list page's time)."""

    template = "backoffice/search_widget.html"

    def __call__(self, **kwargs):
        form = self.template_args["form"]
        columns = tuple(self.template_args["include_cols"])
        key = (self.template_args["route_base"], str(get_locale()), columns)
        parts = _SEARCH_PARTS.get(key)
        if parts is None:
            conditions = self.filters.get_search_filters()
            parts = _SEARCH_PARTS[key] = (
                {col: str(form[col].label.text) for col in columns},
                {col: [str(flt.name) for flt in conditions[col]] for col in columns},
                {col: form[col]() for col in columns if _same_on_every_page(form[col])},
            )
        label_columns, search_filters, fields = parts
        kwargs.update(
            label_columns=label_columns, search_filters=search_filters,
            form_fields={col: fields[col] if col in fields else form[col]() for col in columns},
            active_filters=self.filters.get_filters_values_tojson())
        return RenderTemplateWidget.__call__(self, **kwargs)


class SearchBoxMixin:
    """A model list with one search control: a box for a name, an HSA-id, a personal identity
    number or a card serial (`?q=`), and FAB's filters beside it in the same form. The query
    is app.search's; this only reads the box and shows it."""

    search_widget = SearchBoxWidget
    list_template = "backoffice/search_list.html"
    search_box_label = _l("Name, HSA-id, personal identity number or card serial")
    search_box_help = _l("A whole HSA-id, personal identity number (with or without century "
                         "and dash) or card serial, or at least three letters of a name.")

    @staticmethod
    def search_text() -> str:
        return " ".join(request.args.get("q", "").split())[:200]

    def _get_list_widget(self, filters, **kwargs):
        text = self.search_text()
        if text:
            filters = filters.copy()
            filters.add_filter(self.datamodel.get_pk_name(), SearchBoxFilter, text)
        return super()._get_list_widget(filters, **kwargs)

    def _get_search_widget(self, form=None, exclude_cols=None, widgets=None):
        from app import search

        widgets = super()._get_search_widget(form=form, exclude_cols=exclude_cols,
                                             widgets=widgets)
        text = self.search_text()
        widgets["search"].template_args.update(
            search_text=text, search_hint=search.hint(text),
            search_box_title=self.list_title, search_box_label=self.search_box_label,
            search_box_help=self.search_box_help,
            search_clear_url=url_for(f"{self.__class__.__name__}.list"))
        return widgets
