"""Row scope: which units, and so which deviations and people, a login may see and act on.

Admin and Servicecenter reach every unit. A manager (role Chef) reaches the units they manage
and every unit below them; the tree is walked by the database (a recursive CTE, the same SQL on
SQLite and PostgreSQL), never row by row in Python. Every other role reaches no unit.

Reads narrow their query with `deviations_in_scope` / `people_in_scope`; writes ask
`require_unit` (the workflow does, for every deviation step), which refuses with
`outside_managed_units`.
"""

import logging

from sqlalchemy import false, select

from app.errors import ScopeRefusal
from app.extensions import db
from models import AccountLink, Deviation, Person, Unit, unit_managers

log = logging.getLogger(__name__)

SEE_ALL_ROLES = frozenset({"Admin", "Servicecenter"})
MANAGER_ROLE = "Chef"


def roles(user) -> set[str]:
    return {role.name for role in getattr(user, "roles", None) or []}


def sees_all(user) -> bool:
    """No row scope: Admin and Servicecenter, and the system itself (jobs, commands: no user)."""
    return user is None or bool(roles(user) & SEE_ALL_ROLES)


def units_below(roots):
    """The units in `roots` (a SELECT of one unit-id column) and every unit below them, as a
    SELECT of unit ids. UNION (not UNION ALL) ends the walk even if the tree had a cycle."""
    tree = roots.cte("scope_units", recursive=True)
    child = select(Unit.id).join(tree, Unit.parent_id == tree.c[0])
    return select(tree.union(child).c[0])


def managed_roots(user_id):
    """The units the person of login `user_id` is a manager of (a SELECT of unit ids)."""
    return (
        select(unit_managers.c.unit_id.label("unit_id"))
        .join(AccountLink, AccountLink.person_id == unit_managers.c.person_id)
        .where(AccountLink.user_id == user_id)
    )


def unit_ids(user):
    """None when the login reaches every unit, else a SELECT of the unit ids it reaches (for a
    manager: the managed units and all below; for other roles: none)."""
    if sees_all(user):
        return None
    user_id = getattr(user, "id", None)
    if MANAGER_ROLE not in roles(user) or not user_id:
        return select(Unit.id).where(false())
    return units_below(managed_roots(user_id))


def visible_unit_ids(user) -> frozenset | None:
    """The unit ids the login reaches, read once (a manager's handful of units), or None for
    every unit."""
    scope = unit_ids(user)
    if scope is None:
        return None
    return frozenset(db.session.execute(scope).scalars())


def in_units(column, ids):
    """The condition "column is one of these units" (None: no condition), on the column itself
    so that lists and counts use its index instead of a sorted IN-subquery."""
    if ids is None:
        return None
    return column.in_(sorted(ids)) if ids else false()


def _in_scope(query, column, user):
    condition = in_units(column, visible_unit_ids(user))
    return query if condition is None else query.where(condition)


def deviations_in_scope(query, user):
    """`query` narrowed to the deviations the login may see: those that arose in a unit it
    reaches (the deviation records the person's unit at the time)."""
    return _in_scope(query, Deviation.unit_id, user)


def people_in_scope(query, user):
    """`query` narrowed to the people of the units the login reaches."""
    return _in_scope(query, Person.unit_id, user)


def reaches_unit(user, unit_id) -> bool:
    scope = unit_ids(user)
    if scope is None:
        return True
    if unit_id is None:
        return False
    return db.session.execute(
        select(Unit.id).where(Unit.id == unit_id, Unit.id.in_(scope))
    ).first() is not None


def require_unit(user, unit_id, step: str = "") -> None:
    """Refuse (`outside_managed_units`) a step on something of a unit the login does not
    reach; the refusal is logged (rule, step, user, unit)."""
    if not reaches_unit(user, unit_id):
        log.warning("refused rule=outside_managed_units step=%s user=%s unit=%s", step,
                    getattr(user, "id", None), unit_id)
        raise ScopeRefusal()


def responsible_managers(unit_ids) -> dict:
    """unit id -> the managers responsible for it (of the unit itself and of every unit above
    it), each person once, ordered by HSA-id. One query, the tree walked up by a recursive CTE."""
    unit_ids = [unit_id for unit_id in set(unit_ids) if unit_id is not None]
    if not unit_ids:
        return {}
    up = (select(Unit.id.label("unit_id"), Unit.id.label("ancestor_id"))
          .where(Unit.id.in_(unit_ids)).cte("unit_ancestors", recursive=True))
    parent = (select(up.c.unit_id, Unit.parent_id)
              .join(Unit, Unit.id == up.c.ancestor_id).where(Unit.parent_id.is_not(None)))
    up = up.union(parent)
    rows = db.session.execute(
        select(up.c.unit_id, Person)
        .join(unit_managers, unit_managers.c.unit_id == up.c.ancestor_id)
        .join(Person, Person.id == unit_managers.c.person_id)
        .order_by(up.c.unit_id, Person.hsa_id)
    ).unique().all()
    found = {}
    for unit_id, person in rows:
        people = found.setdefault(unit_id, [])
        if person not in people:
            people.append(person)
    return found
