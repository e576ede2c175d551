"""The extensions, created once and bound to each app in create_app."""

from flask_appbuilder.models.sqla import Model
from flask_appbuilder.models.sqla.base import SQLA
from flask_migrate import Migrate
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url

db = SQLA(model_class=Model)
migrate = Migrate()
csrf = CSRFProtect()


# The one PostgreSQL driver the project ships: psycopg 3, which prepares a statement the
# connection has run a few times, so PostgreSQL plans it once instead of at every request.
POSTGRESQL_DRIVER = "psycopg"


def database_url(url: str) -> str:
    """The URL with PostgreSQL reached through psycopg 3, however it names the driver
    ("postgresql://", "postgresql+psycopg2://"); other databases as they are."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql" or parsed.get_driver_name() == POSTGRESQL_DRIVER:
        return url
    return parsed.set(drivername=f"postgresql+{POSTGRESQL_DRIVER}").render_as_string(
        hide_password=False)


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
