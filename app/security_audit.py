"""Audit rows for FAB's own security data: logins, roles and groups created, changed or removed,
role and permission assignments, and password changes, whichever path made them (FAB's screens
and REST API, the command line, app.accounts).

FAB's views and security manager commit by themselves, so the rows are written from the session:
what a flush changed in FAB's user, role and group tables is noted, and written to the audit log
just before the commit, in the same transaction. Login bookkeeping (last login, login counts)
is not a change and writes nothing. A password appears only as "changed", never its hash.
"""

from flask import current_app, has_app_context
from sqlalchemy import event, inspect

from app import audit

PENDING = "security_audit_pending"
WRITING = "security_audit_writing"
CHANGED = "changed"

# entity -> (scalar attributes, collection attributes) followed in the audit log
TRACKED = {
    "user": (("username", "first_name", "last_name", "email", "active", "password"),
             ("roles", "groups")),
    "role": (("name",), ("permissions", "user")),
    "group": (("name", "label", "description"), ("roles", "users")),
}
SECRET = {"password"}


def _models():
    sm = current_app.appbuilder.sm
    found = {"user": sm.user_model, "role": sm.role_model}
    group_model = getattr(sm, "group_model", None)
    if group_model is not None:
        found["group"] = group_model
    return found


def _entity(obj):
    for name, model in _models().items():
        if isinstance(obj, model):
            return name
    return None


def _names(items) -> list[str]:
    """Logins by username, roles and groups by name, permissions as FAB words them."""
    return sorted(getattr(item, "username", None) or str(item) for item in items or [])


def _state(obj, entity) -> dict:
    scalars, collections = TRACKED[entity]
    state = {key: getattr(obj, key, None) for key in scalars if key not in SECRET}
    for key in collections:
        if key in inspect(obj).unloaded:
            continue
        state[key] = list(getattr(obj, key) or [])
    return state


def _changes(obj, entity):
    """(before, after, password_changed) of the followed attributes a flush changes."""
    scalars, collections = TRACKED[entity]
    attrs = inspect(obj).attrs
    before, after, password = {}, {}, False
    for key in scalars:
        history = attrs[key].history
        if not history.has_changes():
            continue
        if key in SECRET:
            password = True
            continue
        before[key] = history.deleted[0] if history.deleted else None
        after[key] = history.added[0] if history.added else None
    for key in collections:
        history = attrs[key].history
        if not history.has_changes():
            continue
        current = list(getattr(obj, key) or [])
        before[key] = [item for item in current if item not in history.added] + list(
            history.deleted)
        after[key] = current
    return before, after, password


def _noted(session, _flush_context) -> None:
    if session.info.get(WRITING) or not has_app_context():
        return
    pending = session.info.setdefault(PENDING, [])
    for obj in session.new:
        entity = _entity(obj)
        if entity:
            pending.append((f"{entity}.create", entity, obj.id, None, _state(obj, entity)))
    for obj in session.dirty:
        entity = _entity(obj)
        if not entity or not session.is_modified(obj):
            continue
        before, after, password = _changes(obj, entity)
        if after:
            pending.append((f"{entity}.update", entity, obj.id, before, after))
        if password:
            pending.append(("user.password", entity, obj.id, None, {"password": CHANGED}))
    for obj in session.deleted:
        entity = _entity(obj)
        if entity:
            pending.append((f"{entity}.delete", entity, obj.id, _state(obj, entity), None))


def _plain(state):
    if state is None:
        return None
    return {key: _names(value) if isinstance(value, list) else value
            for key, value in state.items()}


def _merged(pending) -> dict:
    """One row per change of one thing in one transaction, however many flushes it took: the
    value before the first flush and after the last."""
    merged = {}
    for action, entity, entity_id, before, after in pending:
        key = (action, entity, entity_id)
        if key not in merged:
            merged[key] = (before, after)
            continue
        first_before, last_after = merged[key]
        if before is not None:
            first_before = {**before, **(first_before or {})}
        if after is not None:
            last_after = {**(last_after or {}), **after}
        merged[key] = (first_before, last_after)
    return merged


def _write(session) -> None:
    if session.info.get(WRITING) or not has_app_context():
        return
    session.flush()  # what is still unflushed is noted too
    pending = session.info.pop(PENDING, [])
    if not pending:
        return
    session.info[WRITING] = True
    try:
        for (action, entity, entity_id), (before, after) in _merged(pending).items():
            audit.record(action, entity, entity_id, before=_plain(before), after=_plain(after))
    finally:
        session.info.pop(WRITING, None)


def _forget(session, *_args) -> None:
    session.info.pop(PENDING, None)


def install(db) -> None:
    """Listen on the app's session once (every app of the process shares it)."""
    for name, listener in (("after_flush", _noted), ("before_commit", _write),
                           ("after_rollback", _forget)):
        if not event.contains(db.session, name, listener):
            event.listen(db.session, name, listener)
