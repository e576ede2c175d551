"""A minimal Django project on the bench database, configured in code, for comparing the
screen lists with Django admin's changelists on the same data (bench/django_admin.py).

Django's own tables (logins, sessions, content types) live in a temporary SQLite file, the
`default` database; the Reservkort tables are read from the bench's PostgreSQL database as the
`bench` database through unmanaged models (models.py), so nothing is created in it.
Django is a bench tool (requirements-dev.txt), imported only when this is called.
"""

import atexit
import os
import secrets
import tempfile

from sqlalchemy.engine import make_url

SUPERUSER = "bench_django_admin"


def _bench_database(url) -> dict:
    parsed = make_url(str(url))
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": parsed.database, "USER": parsed.username or "", "PASSWORD": parsed.password or "",
        "HOST": parsed.host or "", "PORT": str(parsed.port or ""),
        # One connection kept open, as the screens' connection pool does.
        "CONN_MAX_AGE": None,
    }


def _settings(url, sqlite_path) -> dict:
    return {
        "DEBUG": False,
        "SECRET_KEY": secrets.token_urlsafe(48),
        "ALLOWED_HOSTS": ["testserver"],
        "ROOT_URLCONF": "bench.django_site.urls",
        "INSTALLED_APPS": [
            "django.contrib.admin", "django.contrib.auth", "django.contrib.contenttypes",
            "django.contrib.sessions", "django.contrib.messages", "django.contrib.staticfiles",
            "bench.django_site",
        ],
        "MIDDLEWARE": [
            "django.middleware.security.SecurityMiddleware",
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.middleware.common.CommonMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "django.contrib.messages.middleware.MessageMiddleware",
            "django.middleware.clickjacking.XFrameOptionsMiddleware",
        ],
        "TEMPLATES": [{
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "APP_DIRS": True,
            "OPTIONS": {"context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]},
        }],
        "DATABASES": {
            "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": sqlite_path},
            "bench": _bench_database(url),
        },
        "DATABASE_ROUTERS": ["bench.django_site.routing.BenchRouter"],
        "DEFAULT_AUTO_FIELD": "django.db.models.AutoField",
        "STATIC_URL": "/static/",
        # The tables hold UTC moments without a zone, as the application writes them.
        "USE_TZ": False,
        "LANGUAGE_CODE": "sv",
        "USE_I18N": True,
    }


def _sqlite_file() -> str:
    handle, path = tempfile.mkstemp(prefix="rk-bench-django-", suffix=".sqlite3")
    os.close(handle)
    atexit.register(lambda: os.path.exists(path) and os.remove(path))
    return path


def _start(url) -> None:
    import django
    from django.conf import settings
    from django.core.management import call_command

    settings.configure(**_settings(url, _sqlite_file()))
    django.setup()
    call_command("migrate", database="default", verbosity=0, interactive=False)


def _point_at(url) -> None:
    """Read another bench database (the smoke tests make one per test)."""
    from django.conf import settings
    from django.db import connections

    connections["bench"].close()
    # The connection holds this same dict: its next connect reads the new database.
    settings.DATABASES["bench"].update(_bench_database(url))


def close() -> None:
    """Close Django's connection to the bench database (so it can be dropped)."""
    from django.db import connections

    connections["bench"].close()


def admin_client(url):
    """A Django test client logged in to the admin as a superuser, reading `url` (the bench
    database's SQLAlchemy URL)."""
    from django.conf import settings

    if settings.configured:
        _point_at(url)
    else:
        _start(url)
    from django.contrib.auth import get_user_model
    from django.test import Client

    user = get_user_model().objects.filter(username=SUPERUSER).first() or \
        get_user_model().objects.create_superuser(SUPERUSER, None, secrets.token_urlsafe(24))
    client = Client()
    client.force_login(user)
    return client


def statements(run) -> int:
    """How many SQL statements `run` sends to the bench database."""
    from django.db import connections
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connections["bench"]) as captured:
        run()
    return len(captured.captured_queries)
