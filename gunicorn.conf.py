"""gunicorn settings for the web tier: `gunicorn -c gunicorn.conf.py "app:create_app()"`.

Each setting can be overridden by an environment variable (GUNICORN_BIND, WEB_CONCURRENCY,
GUNICORN_TIMEOUT, GUNICORN_CONTROL_SOCKET, GUNICORN_ACCESS_LOG).
"""

import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# One sync worker per core. A request's heaviest part is a password check (scrypt: CPU and
# 32 MiB of memory each); with more workers than cores they only take turns and push each
# other out of the cache (the bench's 20 applying clients: 78-80 % of the machine's password
# check bound with one worker per core, 72-73 % with one more).
workers = int(os.environ.get("WEB_CONCURRENCY", max(2, len(os.sched_getaffinity(0)))))
worker_class = "sync"

# The longest request is a PDF (a receipt or a registered-mail letter, xhtml2pdf) or a report
# export: a few seconds; 60 s leaves room for a slow database without letting a stuck worker
# hold its slot for long. The proxy in front should wait a little longer than this.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = 30
keepalive = 5
# Recycle workers now and then so that a leak cannot grow without bound.
max_requests = 2000
max_requests_jitter = 200

# gunicorn's control socket defaults to one path per user ($XDG_RUNTIME_DIR/gunicorn.ctl or
# ~/.gunicorn/gunicorn.ctl), shared by every instance that user runs: give each instance its
# own, named after its bind address unless set.
_instance = bind.replace(":", "-").replace("/", "_").replace("[", "").replace("]", "")
control_socket = os.environ.get(
    "GUNICORN_CONTROL_SOCKET",
    os.path.join(os.environ.get("RUNTIME_DIRECTORY", "/tmp"), f"reservkort-{_instance}.ctl"),
)
control_socket_mode = 0o600

# The access log goes to stdout (the journal under systemd), one line per request with the
# request id the app puts in its own JSON logs.
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-")
access_log_format = ('%(h)s "%(r)s" %(s)s %(b)s %(M)sms '
                     'request_id=%({x-request-id}o)s')
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")



def post_worker_init(worker):
    """A new worker (at start, and each time one is recycled) builds what the app keeps per
    process before it takes a request (app.warm_up)."""
    from app import warm_up

    warm_up(worker.wsgi)


# Permissions are synced by `flask reservkort deploy`, never by a web worker.
raw_env = ["FAB_UPDATE_PERMS=false"]
