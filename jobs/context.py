"""One app per worker process, so that jobs run inside an application context.

A forking worker (`jobs.worker.AppWorker`) builds the app once in its main process; each forked
work-horse then only drops the database connections it inherited, which must not be shared.
"""

import os
from contextlib import contextmanager

_state = {"app": None, "pid": None}


def use_app(flask_app) -> None:
    """Run jobs in this app (the embedded runner shares the web app with its worker)."""
    _state["app"], _state["pid"] = flask_app, os.getpid()


def get_app():
    if _state["app"] is None:
        from app import create_app

        # Permissions are synced at deploy time (`flask fab create-permissions`), not by workers.
        use_app(create_app(FAB_UPDATE_PERMS=False))
    elif _state["pid"] != os.getpid():
        from app.extensions import db

        with _state["app"].app_context():
            db.engine.dispose(close=False)  # the parent's connections stay the parent's
        _state["pid"] = os.getpid()
    return _state["app"]


@contextmanager
def app_context():
    from app.extensions import db

    flask_app = get_app()
    with flask_app.app_context():
        try:
            yield flask_app
        finally:
            db.session.remove()
