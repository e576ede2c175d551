"""What a client sends is checked once, before any screen or endpoint sees it, so that nothing a
client can send becomes a server error.

The guard refuses, with 400 naming the field and the rule:
- a NUL character in any query argument, form field, path segment, JSON body or text body
  (PostgreSQL cannot store one, and no field of the routine has a use for it);
- a JSON body nested deeper than MAX_JSON_DEPTH (Python's parser would run out of stack);
- paging, sorting and filter arguments of Flask-AppBuilder's lists (the screens' `page_<View>`,
  `psize_<View>`, `_oc_<View>`, `_flt_<n>_<column>`, the keyset cursors `after_<View>` and
  `before_<View>`, and the REST API's rison `q`) that FAB
  would pass on to the database unchecked: negative or huge pages, unknown sort columns,
  unknown filter numbers, and filter values of the wrong type for their column.

It also switches off FAB routes the product has no use for: the file download of every model
screen (no model of ours has a file column).

The REST API gets the contract's JSON answer `{"message", "errors": {field: [...]}}`; a screen
gets the 400 page with the same message.
"""

import json
import re

import prison
from flask import abort, jsonify, request
from flask_appbuilder.baseviews import BaseCRUDView
from flask_babel import lazy_gettext as _l

MAX_JSON_DEPTH = 32
MAX_PAGE = 100_000
MAX_WEB_PAGE_SIZE = 1000
MAX_INTEGER = 2**63 - 1
SWITCHED_OFF_METHODS = {"download"}

NUL_MESSAGE = _l("The value must not contain a NUL character.")


class InputRejected(Exception):
    """A request refused by the guard: `field` names the input, `message` the rule."""

    def __init__(self, field: str, message, **params):
        self.field = field
        self.message = str(message) % params if params else str(message)
        super().__init__(f"{field}: {self.message}")


def install(flask_app) -> None:
    views = {type(view).__name__: view for view in flask_app.appbuilder.baseviews}

    @flask_app.before_request
    def _guard_client_input():
        if request.routing_exception is not None and request.path.startswith("/api/"):
            return _api_routing_error(request.routing_exception)
        view_name, _, method = (request.endpoint or "").partition(".")
        view = views.get(view_name)
        if isinstance(view, BaseCRUDView) and method in SWITCHED_OFF_METHODS:
            abort(404)
        try:
            check_request(view, views)
        except InputRejected as exc:
            return _answer(exc)
        return None


def _api_routing_error(exc):
    """An API path or method that does not exist: the contract's JSON, not an HTML page."""
    code = getattr(exc, "code", 404)
    if code not in (404, 405):
        return None  # e.g. a redirect to the trailing slash
    message = _l("Not found") if code == 404 else _l("Method not allowed")
    response = jsonify({"message": str(message), "errors": {}})
    response.status_code = code
    if code == 405:
        response.headers["Allow"] = ", ".join(exc.valid_methods or ())
    return response


def _answer(exc: InputRejected):
    if request.path.startswith("/api/"):
        response = jsonify({"message": exc.message, "errors": {exc.field: [exc.message]}})
        response.status_code = 400
        return response
    abort(400, description=f"{exc.field}: {exc.message}")


def check_request(view, views) -> None:
    """Raise InputRejected for the first thing in the request the guard refuses."""
    for name, value in (request.view_args or {}).items():
        _no_nul(name, value)
    for source in (request.args, request.form):
        for name in source:
            _no_nul(name, name)
            for value in source.getlist(name):
                _no_nul(name, value)
    _check_body()
    if request.path.startswith("/api/"):
        _check_rison(view)
    else:
        _check_list_args(view, views)


def _no_nul(field, value) -> None:
    if isinstance(value, str) and "\x00" in value:
        raise InputRejected(field, NUL_MESSAGE)


# ---- bodies ---------------------------------------------------------------------------------

def _check_body() -> None:
    if not request.content_length and not request.headers.get("Transfer-Encoding"):
        return
    if request.is_json:
        try:
            data = request.get_json(silent=True)
        except RecursionError:
            raise InputRejected("_body", _l("The JSON body is nested too deeply (at most "
                                            "%(depth)s levels)."), depth=MAX_JSON_DEPTH) from None
        _walk_json(data, "_body")
    elif request.mimetype.startswith("text/") and b"\x00" in request.get_data():
        raise InputRejected("_body", NUL_MESSAGE)


def _walk_json(data, root: str) -> None:
    """Every string (keys too) without NUL, and at most MAX_JSON_DEPTH levels, without
    recursion."""
    stack = [(data, root, 0)]
    while stack:
        node, path, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise InputRejected(root, _l("The JSON body is nested too deeply (at most "
                                         "%(depth)s levels)."), depth=MAX_JSON_DEPTH)
        if isinstance(node, dict):
            for key, value in node.items():
                child = _join(path, root, str(key))
                _no_nul(child, key)
                stack.append((value, child, depth + 1))
        elif isinstance(node, list):
            for index, value in enumerate(node):
                stack.append((value, f"{path}[{index}]", depth + 1))
        else:
            _no_nul(path, node)


def _join(path, root, key):
    return key if path == root else f"{path}.{key}"


# ---- the REST API's rison argument ------------------------------------------------------------

def _parse_q(raw):
    try:
        return prison.loads(raw)
    except Exception:  # noqa: BLE001  (FAB also accepts JSON, and answers 400 for neither)
        try:
            return json.loads(raw)
        except Exception:  # noqa: BLE001
            return None


LIST_OPERATORS = ("in", "not_in")


def _check_rison(view) -> None:
    raw = request.args.get("q")
    datamodel = getattr(view, "datamodel", None)
    if raw is None or datamodel is None:
        return
    args = _parse_q(raw)
    if not isinstance(args, dict):
        return  # FAB answers 400 itself
    page = args.get("page")
    if page is not None:
        _integer("q.page", page, 0, MAX_PAGE)
    filters = args.get("filters")
    if not isinstance(filters, list):
        return
    for index, item in enumerate(filters):
        if not isinstance(item, dict) or not isinstance(item.get("col"), str):
            continue  # FAB answers 400 itself
        column = item["col"]
        if column not in (getattr(view, "search_columns", None) or ()):
            continue  # FAB answers 400 itself
        field = f"q.filters[{index}].value"
        values = item.get("value")
        # FAB's list operators (in, not_in) take a list of values; the others one value.
        for value in values if isinstance(values, list) and item.get("opr") in LIST_OPERATORS \
                else [values]:
            _filter_value(datamodel, column, value, field, web=False)


# ---- the screens' list arguments ------------------------------------------------------------

PAGE_ARG = re.compile("page_(.*)")
PAGE_SIZE_ARG = re.compile("psize_(.*)")
ORDER_ARG = re.compile("_oc_(.*)")
# The list screens' keyset cursors (views.listing.CursorPagerMixin): a row's id.
CURSOR_ARG = re.compile("^(?:after|before)_(.*)")
MAX_ID = 2**31 - 1
FILTER_ARG = re.compile(r"_flt_(\d)_(.*)")


def _check_list_args(view, views) -> None:
    # FAB reads page_* and psize_* of every view on every list, show and edit page.
    for name in request.args:
        value = request.args.get(name)
        if PAGE_ARG.search(name):
            _integer(name, value, 0, MAX_PAGE)
        if PAGE_SIZE_ARG.search(name):
            _integer(name, value, 1, MAX_WEB_PAGE_SIZE)
        cursor = CURSOR_ARG.search(name)
        if cursor and isinstance(views.get(cursor.group(1)), BaseCRUDView):
            _integer(name, value, 1, MAX_ID)
        order = ORDER_ARG.search(name)
        if order:
            target = views.get(order.group(1))
            if isinstance(target, BaseCRUDView) and value not in target.order_columns:
                raise InputRejected(name, _l("Not a column the list can be sorted on."))
    if not isinstance(view, BaseCRUDView):
        return
    search = view._filters.get_search_filters()
    for name in request.args:
        match = FILTER_ARG.search(name)
        if not match or match.group(2) not in search:
            continue  # FAB ignores it
        column = match.group(2)
        if int(match.group(1)) >= len(search[column]):
            raise InputRejected(name, _l("Not a filter of this column."))
        for value in request.args.getlist(name):
            _filter_value(view.datamodel, column, value, name, web=True)


# ---- values ---------------------------------------------------------------------------------

def _integer(field, value, low, high) -> int:
    try:
        number = int(value) if not isinstance(value, (bool, float)) else None
    except (TypeError, ValueError):
        number = None
    if number is None or not low <= number <= high:
        raise InputRejected(field, _l("Must be a whole number from %(low)s to %(high)s."),
                            low=low, high=high)
    return number


def _filter_value(datamodel, column, value, field, web: bool) -> None:
    """A filter value the column's type can take (FAB would hand anything to the database)."""
    if datamodel.is_relation(column):
        return  # FAB looks the related row up by its key and finds none
    if datamodel.is_boolean(column):
        if web and value != "y":
            raise InputRejected(field, _l("A yes/no filter takes the value 'y'."))
        if not web and not isinstance(value, bool):
            raise InputRejected(field, _l("Must be true or false (a JSON boolean)."))
    elif datamodel.is_integer(column):
        if value is not None and str(value).strip().lstrip("-").isdigit():
            _integer(field, value, -MAX_INTEGER, MAX_INTEGER)
        elif not web and value is not None:
            raise InputRejected(field, _l("Must be a whole number from %(low)s to %(high)s."),
                                low=-MAX_INTEGER, high=MAX_INTEGER)
    elif not web and value is not None and not isinstance(value, str):
        raise InputRejected(field, _l("Must be a string."))
