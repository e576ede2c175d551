"""The policy applied to Flask-AppBuilder's generated reads: every screen list/show/search and
every REST list/get (whatever columns or filters the client asks for) goes through these.

- `AccessInterface` is the data interface of every model screen: a search on a column that
  identifies a person (name, personal identity number, e-mail, or text that may carry them)
  never matches a protected person for a login without clearance, ordering by such a column
  sorts a protected person by the mask, and every value read for a page is masked.
- `MaskingSchemaConverter` makes every serialised row of a REST answer (nested ones included,
  e.g. `person.name` on a deviation) masked, for any column selection.
"""

from functools import reduce

from flask_appbuilder.api.convert import Model2SchemaConverter
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_appbuilder.security.sqla.models import User
from marshmallow import post_dump
from sqlalchemy import (
    Enum,
    asc,
    case,
    desc,
    exists,
    inspect,
    literal,
    or_,
    select,
    true,
    union_all,
)

from app.access.persons import (
    MASK,
    PERSON_FIELDS,
    USER_FIELDS,
    current_user_cleared,
    hidden,
    protected_logins,
    retired_logins_of_protected,
    shown,
    shown_login,
)
from app.access.redaction import audit_value, masked_dump, outbox_value, shown_column
from models import AuditEvent, Issuance, KobeRecord, OutboxMessage, Person, RetiredLogin

OUTBOX_TEXT = ("to_addrs", "subject", "body_text", "body_html")


def protected_people():
    return select(Person.id).where(Person.protected_identity.is_(True))


def findable_people(cleared=None, hsa_id=None):
    """The condition on Person of those a search may find for the login (or for `cleared`): a
    protected person only with clearance. Without it they are not found by any field (not even
    an exact HSA-id), so a search never confirms that they exist; except that a look-up which
    picks one person by their exact HSA-id (`hsa_id`: a unit's manager) finds them by it, the
    HSA-id not being protected (they are shown masked)."""
    if current_user_cleared() if cleared is None else cleared:
        return true()
    visible = Person.protected_identity.is_(False)
    return (visible | (Person.hsa_id == hsa_id)) if hsa_id else visible


def outbox_about_protected():
    """An e-mail that names or goes to a protected person: sent to their address, or about
    one of their issuances."""
    return or_(
        OutboxMessage.issuance_id.in_(
            select(Issuance.id).where(Issuance.recipient_id.in_(protected_people()))),
        exists(select(Person.id).where(
            Person.protected_identity.is_(True), Person.email.is_not(None),
            OutboxMessage.to_addrs.contains(Person.email))),
    )


def _about_protected(model, leaf):
    """The condition "this row identifies a protected person through `leaf`", or None when a
    search on `leaf` of `model` cannot identify anyone."""
    if model is Person and leaf in PERSON_FIELDS:
        return Person.protected_identity.is_(True)
    if model is OutboxMessage and leaf in OUTBOX_TEXT:
        return outbox_about_protected()
    if model is User and leaf in USER_FIELDS:
        return User.id.in_(protected_logins())
    if model is AuditEvent and leaf == "actor":
        return AuditEvent.actor_user_id.in_(protected_logins())
    if model is KobeRecord and leaf == "updated_by":
        return KobeRecord.updated_by.in_(protected_usernames())
    return None


def protected_usernames():
    """A select of the usernames of the protected people's logins, deleted ones too (columns
    that name a login by its username alone, e.g. who last updated a Kobe row)."""
    return union_all(select(User.username).where(User.id.in_(protected_logins())),
                     retired_logins_of_protected(RetiredLogin.username))


def search_guard(model, column_name):
    """For a search on `column_name` (dotted through relations, e.g. `person.name`) of
    `model`: the condition that excludes rows about a protected person, or None."""
    *relations, leaf = column_name.split(".")
    attributes, current = [], model
    for name in relations:
        relation = inspect(current).relationships.get(name)
        if relation is None:
            return None
        attributes.append((getattr(current, name), relation.uselist))
        current = relation.mapper.class_
    condition = _about_protected(current, leaf)
    if condition is None:
        return None
    for attribute, many in reversed(attributes):
        condition = attribute.any(condition) if many else attribute.has(condition)
    return ~condition


def searched_columns(filters) -> list[str]:
    return [flt.column_name for flt in getattr(filters, "filters", []) or []
            if not getattr(flt, "is_related_view", False)]


def apply_search_policy(model, query, filters):
    """The query narrowed so that the login's searches cannot find a protected person."""
    guards = [guard for guard in (search_guard(model, column)
                                  for column in dict.fromkeys(searched_columns(filters)))
              if guard is not None]
    if guards and not current_user_cleared():
        for guard in guards:
            query = query.filter(guard)
    return query


def masked_order(model, column):
    """The sort key of `column` as the login sees it: a protected person's name (their login's
    username and names, the audit log's "who" of their login) sorts as the mask (their place
    in a list ordered by it must not tell it)."""
    if current_user_cleared():
        return None
    if model is Person and column in PERSON_FIELDS:
        hidden_row = Person.protected_identity.is_(True)
    elif model is User and column in USER_FIELDS:
        hidden_row = User.id.in_(protected_logins())
    elif model is AuditEvent and column == "actor":
        # One hashed look-up of the few protected logins per row of a sort that reads every
        # row anyway (no index serves the order by "who").
        hidden_row = AuditEvent.actor_user_id.in_(protected_logins())
    elif model is KobeRecord and column == "updated_by":
        hidden_row = KobeRecord.updated_by.in_(protected_usernames())
    else:
        return None
    shown_value = (literal(str(MASK)) if column in ("name", "username", "first_name",
                                                    "last_name", "actor", "updated_by")
                   else literal(None))
    return case((hidden_row, shown_value), else_=getattr(model, column))


class AccessInterface(SQLAInterface):
    """SQLAInterface with the access policy, and the named relations loaded with each list
    page (no query per row)."""

    def __init__(self, obj, *load_options, session=None):
        super().__init__(obj, session=session)
        self.load_options = load_options

    def apply_all(self, query, *args, **kwargs):
        query = super().apply_all(query, *args, **kwargs)
        return query.options(*self.load_options) if self.load_options else query

    def apply_filters(self, query, filters):
        query = super().apply_filters(query, filters)
        return apply_search_policy(self.obj, query, filters)

    def apply_order_by(self, query, order_column, order_direction, *args, **kwargs):
        key = masked_order(self.obj, order_column) if order_column else None
        if key is None:
            return super().apply_order_by(query, order_column, order_direction, *args,
                                          **kwargs)
        direction = asc if order_direction == "asc" else desc
        return query.order_by(direction(key), direction(self.obj.id))

    def order_keys(self, order_column):
        """The expressions `apply_order_by` sorts a list by (the column as the login sees it,
        then the primary key as tie-breaker): what a keyset cursor compares on."""
        primary_key = getattr(self.obj, self.get_pk_name())
        if not order_column or order_column == self.get_pk_name():
            return [primary_key]
        key = masked_order(self.obj, order_column)
        return [getattr(self.obj, order_column) if key is None else key, primary_key]

    # Rows of these models have a rule of their own for their columns (`_get_attr_value`).
    _OWN_RULES = (Person, AuditEvent, OutboxMessage, User)

    def get_values(self, lst, list_columns):
        """The values of a list page, each as `_get_attr_value` shows it. How a column is read
        is decided once per page, not in every cell: a plain mapped column of a row whose
        model has no rule of its own is read straight and shown by the same policy."""
        readers = [(col, self.cell_reader(col)) for col in list_columns]
        for item in lst:
            yield {col: read(item) for col, read in readers}

    def cell_reader(self, col):
        """A function of a row giving `_get_attr_value(row, col)`."""
        attributes = inspect(self.obj).attrs
        plain = ("." not in col and col in attributes and not issubclass(
            self.obj, self._OWN_RULES) and not _enum_column(attributes[col]))
        if not plain:
            return lambda item: self._get_attr_value(item, col)

        def read(item):
            value = getattr(item, col)
            if callable(value):  # as FAB does: a callable value is called
                return self._get_attr_value(item, col)
            return shown(shown_column(item, col, value))

        return read

    def _get_attr_value(self, item, col):
        value = super()._get_attr_value(item, col)
        *path, leaf = col.split(".")
        try:
            owner = reduce(getattr, path, item)
        except AttributeError:
            owner = None
        if isinstance(owner, Person) and leaf in PERSON_FIELDS and hidden(owner):
            value = str(MASK)  # a screen shows the mask in each identifying column
        elif isinstance(owner, AuditEvent) and leaf in ("before", "after"):
            value = audit_value(owner, value)
        elif isinstance(owner, OutboxMessage):
            value = outbox_value(leaf, value)
        elif isinstance(owner, User) and leaf in USER_FIELDS:
            value = shown_login(owner, value)
        else:
            value = shown_column(owner, leaf, value)
        return shown(value)


def _enum_column(attribute) -> bool:
    """Whether a mapped attribute is an Enum column (FAB shows an Enum's value)."""
    columns = getattr(attribute, "columns", ())
    return any(isinstance(column.type, Enum) for column in columns)


class MaskingSchemaConverter(Model2SchemaConverter):
    """FAB's model-to-schema converter whose every schema (and nested schema) masks a dumped
    protected person for a login without clearance."""

    def _meta_schema_factory(self, columns, model, class_mixin, parent_schema_name=None):
        schema = super()._meta_schema_factory(columns, model, class_mixin,
                                              parent_schema_name=parent_schema_name)

        def _mask(self, data, original, **kwargs):
            return masked_dump(original, data)

        return type(schema.__name__, (schema,),
                    {"_access_mask": post_dump(pass_original=True)(_mask)})


__all__ = ["AccessInterface", "MaskingSchemaConverter", "apply_search_policy", "findable_people",
           "search_guard"]
