"""The bench database: create it, migrate it, load the reference and demo data, drop it."""

import os
import secrets
import tempfile
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

import config
from app import create_app
from app.extensions import db

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/rk_bench"


def _admin_connection(url):
    """An autocommit connection to the server's `postgres` database."""
    server = make_url(url).set(drivername="postgresql", database="postgres")
    return psycopg.connect(server.render_as_string(hide_password=False), autocommit=True)


def recreate(url) -> None:
    """Drop the database if it exists and create it empty."""
    name = make_url(url).database
    connection = _admin_connection(url)
    try:
        cursor = connection.cursor()
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{name}"')
    finally:
        connection.close()


def drop(url) -> None:
    name = make_url(url).database
    connection = _admin_connection(url)
    try:
        connection.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        connection.close()


def bench_app(url, instance_dir=None, **overrides):
    """The production configuration pointed at the bench database, with its files in a
    temporary instance folder, no Redis and no login rate limit (the bench logs in often)."""
    instance = Path(instance_dir or tempfile.mkdtemp(prefix="rk-bench-"))
    settings = {
        "SQLALCHEMY_DATABASE_URI": url,
        "INSTANCE_DIR": str(instance),
        "MAIL_DIR": str(instance / "mail"),
        "UPLOAD_DIR": str(instance / "uploads"),
        "REDIS_URL": "",
        "RATELIMIT_ENABLED": False,
        "SECRET_KEY": os.environ.get("SECRET_KEY") or secrets.token_urlsafe(48),
        "RATELIMIT_STORAGE_URI": "memory://",
        **overrides,
    }
    return create_app(config.Config, **settings)


def migrate_and_load(url, instance_dir=None):
    """Run the migrations, then roles, permissions, reference data and the demo logins.
    Returns the app to fill and measure with."""
    from flask_migrate import upgrade

    first = bench_app(url, instance_dir)
    with first.app_context():
        upgrade()
        db.session.remove()
        db.engine.dispose()
    flask_app = bench_app(url, instance_dir)
    with flask_app.app_context():
        from app import demo
        from app.bootstrap import init_security_and_reference_data

        init_security_and_reference_data()
        demo.load(living=False)
        db.session.remove()
    return flask_app
