"""The extensions, created once and bound to each app in create_app."""

from flask_appbuilder.models.sqla import Model
from flask_appbuilder.models.sqla.base import SQLA
from flask_migrate import Migrate
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import event
from sqlalchemy.engine import Engine

db = SQLA(model_class=Model)
migrate = Migrate()
csrf = CSRFProtect()


def _unicode_lower(value):
    return value.lower() if isinstance(value, str) else value


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, _record):
    """SQLite enforces foreign keys only when asked, per connection. Its lower() folds only
    ASCII: replaced by Python's, so a case-insensitive search (`ILIKE` is `lower() LIKE
    lower()` there) finds "Åkesson" for "åkesson" as PostgreSQL does. No index is built on
    lower() on SQLite, so none depends on the built-in one."""
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()
        dbapi_connection.create_function("lower", 1, _unicode_lower, deterministic=True)
