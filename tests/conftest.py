"""Shared fixtures: a migrated database per test (SQLite by default, PostgreSQL too for tests
marked `both_databases`), the app, clients logged in per role, and small factories.

Each database is migrated once per session into a template (a file copy for SQLite, a
`CREATE DATABASE ... TEMPLATE` for PostgreSQL), so every test starts from the migrated schema
with the demo data and costs no migration run.
"""

import os
import shutil
import uuid
from datetime import date, datetime

import psycopg
import pytest
from flask import g, request_started
from sqlalchemy import event, select

from app import clock, create_app
from app.extensions import db
from config import TestConfig

PG_ADMIN_DSN = os.environ.get(
    "TEST_PG_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
)
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
DEMO_PASSWORD = "Reservkort-demo-2026"
ROLE_LOGINS = {
    "Admin": "admin",
    "Servicecenter": "servicecenter",
    "Televäxeln": "televaxeln",
    "Korthandläggare": "korthandlaggare",
    "Chef": "chef",
    "Intygsgivare": "intygsgivare1",
}



def pytest_sessionstart(session):
    from app.translations.build import build

    build("sv")


def pytest_generate_tests(metafunc):
    if "dialect" not in metafunc.fixturenames:
        return
    if metafunc.definition.get_closest_marker("postgresql_only"):
        dialects = ["postgresql"]
    elif metafunc.definition.get_closest_marker("both_databases"):
        dialects = ["sqlite", "postgresql"]
    else:
        dialects = ["sqlite"]
    metafunc.parametrize("dialect", dialects, scope="session")


def _pg_admin():
    try:
        return psycopg.connect(PG_ADMIN_DSN, autocommit=True)
    except psycopg.OperationalError as exc:  # a missing service must fail, never skip
        raise RuntimeError(f"PostgreSQL is not reachable at {PG_ADMIN_DSN}: {exc}") from exc


def _prepare(url, instance):
    """Migrate an empty database and load the demo data into it."""
    from flask_migrate import upgrade

    template_app = create_app(TestConfig, SQLALCHEMY_DATABASE_URI=url, INSTANCE_DIR=instance,
                              MAIL_DIR=f"{instance}/mail", UPLOAD_DIR=f"{instance}/uploads")
    with template_app.app_context():
        upgrade()
        db.session.remove()
        db.engine.dispose()
    demo_app = create_app(TestConfig, SQLALCHEMY_DATABASE_URI=url, INSTANCE_DIR=instance,
                          MAIL_DIR=f"{instance}/mail", UPLOAD_DIR=f"{instance}/uploads")
    with demo_app.app_context():
        from app import demo

        # The base demo only: the living region's issuances would change what every test
        # counts; tests about it ask for the `living_demo` fixture.
        demo.load(living=False)
        db.session.remove()
        db.engine.dispose()


def _add_living(url, instance):
    """Replay the living region into a copy of the template (app.demo.load_living)."""
    living_app = create_app(TestConfig, SQLALCHEMY_DATABASE_URI=url, INSTANCE_DIR=instance,
                            MAIL_DIR=f"{instance}/mail", UPLOAD_DIR=f"{instance}/uploads",
                            FAB_UPDATE_PERMS=False)
    with living_app.app_context():
        from app import demo

        demo.load_living()
        db.session.remove()
        db.engine.dispose()


def _template(dialect, base, prefix, build, source=None):
    """A template database made by `build(url, base)`, copied from `source` when given; a path
    on SQLite, a database name on PostgreSQL. Yields it and drops it afterwards."""
    if dialect == "sqlite":
        path = base / f"{prefix}.db"
        if source:
            shutil.copy(source, path)
        build(f"sqlite:///{path}", str(base))
        yield path
        return
    name = f"rk_{prefix}_{uuid.uuid4().hex[:10]}"
    admin = _pg_admin()
    copy = f' TEMPLATE "{source}"' if source else ""
    admin.cursor().execute(f'CREATE DATABASE "{name}"{copy}')
    build(PG_URL.format(name=name), str(base))
    yield name
    admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


@pytest.fixture(scope="session")
def database_template(dialect, tmp_path_factory):
    """A migrated database with demo data, to copy for each test."""
    yield from _template(dialect, tmp_path_factory.mktemp(f"template-{dialect}"), "tmpl",
                         _prepare)


@pytest.fixture(scope="session")
def living_template(dialect, database_template, tmp_path_factory):
    """The template with the living region on top, made once per session when a test asks."""
    yield from _template(dialect, tmp_path_factory.mktemp(f"living-{dialect}"), "live",
                         _add_living, source=database_template)


@pytest.fixture(scope="session")
def test_database(dialect, database_template, tmp_path_factory):
    """One database per session and dialect, restored from the template before each test, so
    that one app can serve every test that needs no configuration of its own. `restore(t)`
    restores from another template `t` (the living demo's)."""
    if dialect == "sqlite":
        path = tmp_path_factory.mktemp("db-sqlite") / "test.db"
        shutil.copy(database_template, path)
        yield {"url": f"sqlite:///{path}",
               "restore": lambda template=database_template: shutil.copy(template, path)}
        return
    name = f"rk_test_{uuid.uuid4().hex[:12]}"
    admin = _pg_admin()

    def restore(template=database_template):
        cursor = admin.cursor()
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')

    restore()  # the shared app connects while it is being created
    yield {"url": PG_URL.format(name=name), "restore": restore}
    admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


def _make_app(database_url, instance, overrides):
    flask_app = create_app(
        TestConfig,
        SQLALCHEMY_DATABASE_URI=database_url,
        INSTANCE_DIR=str(instance),
        MAIL_DIR=str(instance / "mail"),
        UPLOAD_DIR=str(instance / "uploads"),
        FAB_UPDATE_PERMS=False,
        **overrides,
    )
    # Test-client requests may share the test's app context: never reuse a cached user.
    request_started.connect(_forget_cached_user, flask_app)
    return flask_app


@pytest.fixture(scope="session")
def shared_app(test_database, tmp_path_factory):
    return _make_app(test_database["url"], tmp_path_factory.mktemp("shared-instance"), {})


@pytest.fixture
def database_url(test_database, shared_app):
    """A fresh copy of the migrated demo database for this test."""
    with shared_app.app_context():
        db.session.remove()
        db.engine.dispose()
    test_database["restore"]()
    return test_database["url"]


@pytest.fixture
def app_config():
    """Override in a test module to change configuration values."""
    return {}


def _forget_cached_user(sender, **extra):
    # A test keeps one app context, so flask.g would outlive each request; clear what a request
    # caches there, as a real request's fresh context would.
    for key in ("_login_user", "user", "protected_identity_clearance", "_jwt_extended_jwt_user",
                "_jwt_extended_jwt", "_jwt_extended_jwt_header", "_jwt_extended_jwt_location"):
        g.pop(key, None)


@pytest.fixture
def app(database_url, tmp_path, app_config, shared_app):
    instance = tmp_path / "instance"
    if app_config:
        flask_app = _make_app(database_url, instance, app_config)
    else:
        flask_app = shared_app
    saved_config = dict(flask_app.config)
    flask_app.config.update(INSTANCE_DIR=str(instance), MAIL_DIR=str(instance / "mail"),
                            UPLOAD_DIR=str(instance / "uploads"))
    for key in ("MAIL_DIR", "UPLOAD_DIR"):
        os.makedirs(flask_app.config[key], exist_ok=True)
    try:
        with flask_app.app_context():
            yield flask_app
            db.session.remove()
            db.engine.dispose()
    finally:
        flask_app.config.clear()
        flask_app.config.update(saved_config)
        clock.set_now(None)


@pytest.fixture
def session(app):
    return db.session


@pytest.fixture
def generic_plans(app):
    """PostgreSQL connections that prepare each statement at once and plan it generically, as
    PostgreSQL may do once psycopg has prepared a statement the connection keeps running."""
    def prepare_at_once(_dialect, _record, _args, params):
        params.update(prepare_threshold=0, options="-c plan_cache_mode=force_generic_plan")

    event.listen(db.engine, "do_connect", prepare_at_once)
    db.session.remove()
    db.engine.dispose()
    yield
    event.remove(db.engine, "do_connect", prepare_at_once)
    db.session.remove()
    db.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def login(app):
    """login(role_or_username) -> a test client logged in as that user."""

    def _login(who, password=DEMO_PASSWORD):
        username = ROLE_LOGINS.get(who, who)
        test_client = app.test_client()
        response = test_client.post("/login/", data={"username": username,
                                                      "password": password})
        assert response.status_code in (302, 303), f"login of {username} failed"
        return test_client

    return _login


@pytest.fixture
def api_headers(app):
    """api_headers(role_or_username) -> Authorization header dict with a JWT."""

    def _headers(who, password=DEMO_PASSWORD):
        username = ROLE_LOGINS.get(who, who)
        response = app.test_client().post("/api/v1/security/login", json={
            "username": username, "password": password, "provider": "db", "refresh": True})
        assert response.status_code == 200, response.get_json()
        return {"Authorization": f"Bearer {response.get_json()['access_token']}"}

    return _headers


@pytest.fixture
def as_user(app):
    """as_user(username): run workflow calls as that logged-in user (a request context)."""
    from contextlib import contextmanager

    from flask_login import login_user

    @contextmanager
    def _as(who):
        username = ROLE_LOGINS.get(who, who)
        user = app.appbuilder.sm.find_user(username=username)
        with app.test_request_context():
            login_user(user)
            yield user
        # Test-client requests share the test's app context: leave no logged-in user behind.
        g.pop("_login_user", None)

    return _as


@pytest.fixture
def set_now():
    """set_now(datetime or ISO string): freeze the one clock for this test."""

    def _set(moment):
        if isinstance(moment, str):
            moment = datetime.fromisoformat(moment)
        if isinstance(moment, date) and not isinstance(moment, datetime):
            moment = datetime(moment.year, moment.month, moment.day, 10, 0)
        clock.set_now(moment)
        return moment

    yield _set
    clock.set_now(None)


@pytest.fixture
def demo_person(app):
    """demo_person(name_prefix) -> the demo Person whose name starts with it."""
    from models import Person

    def _person(prefix):
        return db.session.execute(
            select(Person).where(Person.name.like(f"{prefix}%"))
        ).scalar_one()

    return _person


@pytest.fixture
def living_demo(app, test_database, living_template):
    """This test's database holds the living region too (app.demo.load_living), copied from
    a template made once per session."""
    from app import demo

    db.session.remove()
    db.engine.dispose()
    test_database["restore"](living_template)
    return demo


@pytest.fixture
def in_stock_card(app):
    """in_stock_card(loa="LOA2") -> a sealed demo card that is free to issue."""
    from models import ReserveCard

    def _card(loa="LOA2"):
        return db.session.execute(
            select(ReserveCard).where(ReserveCard.status == "in_stock", ReserveCard.loa == loa,
                                      ReserveCard.bound_person_id.is_(None))
            .order_by(ReserveCard.expires_on.desc()).limit(1)
        ).scalar_one()

    return _card


NAMESAKES = (("SE2321000131-E000000000771", "Tora Tvillingsson"),
             ("SE2321000131-E000000000772", "Tyra Tvillingsson"))


@pytest.fixture
def namesakes(app):
    """Two people who share the surname "Tvillingsson" (a name that finds more than one)."""
    from models import Person

    people = [Person(hsa_id=hsa_id, name=name, protected_identity=False)
              for hsa_id, name in NAMESAKES]
    db.session.add_all(people)
    db.session.commit()
    return people
