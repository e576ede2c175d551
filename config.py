"""Configuration: defaults for the embedded set-up, overridable by environment variables.

Every number of the routine (days, windows, counts) lives here so that a region can change it
without touching code.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
_INSTANCE = Path(os.environ.get("RESERVKORT_INSTANCE", BASE_DIR / "instance"))


def _env_bool(name, default):
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _env_int(name, default):
    return int(os.environ.get(name, default))


def _install_job_queue(flask_app):
    from jobs.queue import install

    install(flask_app)


class Config:
    APP_NAME = "Reservkort"
    # No usable default: every start but the embedded one (`make run`) refuses to run without a
    # real key (app.secrets); the embedded start makes a random one under the instance folder.
    SECRET_KEY = os.environ.get("SECRET_KEY", "")
    EMBEDDED = _env_bool("RESERVKORT_EMBEDDED", False)
    SQLALCHEMY_DATABASE_URI = os.environ.get(
        "DATABASE_URL", f"sqlite:///{_INSTANCE / 'reservkort.db'}"
    )
    SQLALCHEMY_TRACK_MODIFICATIONS = False
    # A pooled connection is tested before use, so the first request after a database restart
    # does not fail on a connection the server has already closed.
    SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True}
    REDIS_URL = os.environ.get("REDIS_URL", "")  # empty: in-process substitute
    INSTANCE_DIR = str(_INSTANCE)
    MAIL_DIR = str(_INSTANCE / "mail")
    UPLOAD_DIR = str(_INSTANCE / "uploads")
    # Exports up to this many rows stream in the request; bigger ones are built by a job.
    EXPORT_STREAM_MAX_ROWS = int(os.environ.get("EXPORT_STREAM_MAX_ROWS", "20000"))

    # Flask-AppBuilder
    AUTH_TYPE = 1  # AUTH_DB
    AUTH_ROLE_ADMIN = "Admin"
    AUTH_ROLE_PUBLIC = "Public"
    FAB_UPDATE_PERMS = _env_bool("FAB_UPDATE_PERMS", True)
    FAB_CREATE_DB = False  # tables come from the migrations only
    FAB_API_SWAGGER_UI = True
    # FAB's user, role and permission REST API: not part of the contract (users are managed
    # on the screens and with the command line).
    FAB_ADD_SECURITY_API = False
    # FAB's OpenAPI document and menu API come from views/api/fab.py (documents that match).
    FAB_ADD_MENU_API = False
    FAB_ADD_OPENAPI_VIEWS = False
    FAB_API_MAX_PAGE_SIZE = 100
    FAB_SECURITY_MANAGER_CLASS = "app.security.ReservkortSecurityManager"
    FAB_INDEX_VIEW = "views.home.HomeView"
    FAB_BASE_TEMPLATE = "reservkort_base.html"
    APP_THEME = ""
    JWT_ACCESS_TOKEN_EXPIRES = 3600
    WTF_CSRF_ENABLED = True
    WTF_CSRF_TIME_LIMIT = None

    # Language: Swedish first.
    BABEL_DEFAULT_LOCALE = "sv"
    BABEL_DEFAULT_FOLDER = "app/translations"
    LANGUAGES = {
        "sv": {"flag": "se", "name": "Svenska"},
        "en": {"flag": "gb", "name": "English"},
    }
    TIMEZONE = "Europe/Stockholm"

    # The routine's numbers.
    REASON_MAX_DAYS = {
        "forgotten": _env_int("MAX_DAYS_FORGOTTEN", 10),
        "lost_stolen_damaged": _env_int("MAX_DAYS_LOST", 30),
        "awaiting_new_card": _env_int("MAX_DAYS_AWAITING_NEW_CARD", 30),
        "temporary_assignment": _env_int("MAX_DAYS_TEMPORARY_ASSIGNMENT", 100),
    }
    RECEIPT_DUE_DAYS = _env_int("RECEIPT_DUE_DAYS", 7)
    RECEIPT_REMINDER_DAYS_BEFORE = _env_int("RECEIPT_REMINDER_DAYS_BEFORE", 2)
    EXPIRY_REMINDER_DAYS_BEFORE = (7, 3)
    EXTENSION_WINDOW_MONTHS = _env_int("EXTENSION_WINDOW_MONTHS", 7)
    RETURN_GRACE_DAYS = _env_int("RETURN_GRACE_DAYS", 7)
    MAIL_RECEIPT_DUE_DAYS = _env_int("MAIL_RECEIPT_DUE_DAYS", 14)
    DEFAULT_ATTESTERS_REQUIRED = _env_int("DEFAULT_ATTESTERS_REQUIRED", 2)
    EXCLUDED_ATTESTER_ROLES = ("RA", "ORA", "KRA", "LRA")
    CARD_BOUND_TO_FIRST_HOLDER = _env_bool("CARD_BOUND_TO_FIRST_HOLDER", True)
    CARD_EXPIRY_WARNING_DAYS = _env_int("CARD_EXPIRY_WARNING_DAYS", 90)
    WIZARD_IDLE_MINUTES = _env_int("WIZARD_IDLE_MINUTES", 15)
    # An attester's authentication in the application session counts for this long.
    ATTESTATION_MAX_AGE_MINUTES = _env_int("ATTESTATION_MAX_AGE_MINUTES", 60)
    SWEEP_INTERVAL_MINUTES = _env_int("SWEEP_INTERVAL_MINUTES", 5)

    # E-mail
    MAIL_FROM = os.environ.get("MAIL_FROM", "reservkort@example.se")
    SMTP_HOST = os.environ.get("SMTP_HOST", "")  # empty: write .eml files under MAIL_DIR
    SMTP_PORT = _env_int("SMTP_PORT", 25)
    SMTP_STARTTLS = _env_bool("SMTP_STARTTLS", False)
    SMTP_USERNAME = os.environ.get("SMTP_USERNAME", "")
    SMTP_PASSWORD = os.environ.get("SMTP_PASSWORD", "")
    OUTBOX_MAX_ATTEMPTS = _env_int("OUTBOX_MAX_ATTEMPTS", 5)
    OUTBOX_BACKOFF_SECONDS = _env_int("OUTBOX_BACKOFF_SECONDS", 60)
    TELEVAXELN_MAILBOX = os.environ.get("TELEVAXELN_MAILBOX", "televaxeln@example.se")
    MINA_SIDOR_URL = "https://minasidor.siths.se"
    MAIL_SIGNATURE = "SITHS korthandläggare inom Region Halland"
    # Where a user reports an accessibility problem (the accessibility statement names it).
    ACCESSIBILITY_CONTACT = os.environ.get("ACCESSIBILITY_CONTACT", "tillganglighet@example.se")
    ACCESSIBILITY_REVIEWED_ON = os.environ.get("ACCESSIBILITY_REVIEWED_ON", "2026-12-01")
    SERVICECENTER_ADDRESS = os.environ.get(
        "SERVICECENTER_ADDRESS", "Servicecenter, Box 1, 301 80 Halmstad"
    )
    READER_BRIDGE_URL = os.environ.get("READER_BRIDGE_URL", "http://127.0.0.1:8765")
    MAX_UPLOAD_BYTES = _env_int("MAX_UPLOAD_BYTES", 5 * 1024 * 1024)

    FAB_ROLES = {}  # filled in app/roles.py
    # Separation of duties: Admin does not approve, register receipts, return cards or run the
    # registered-mail flow (app/roles.py); True gives Admin every permission.
    ADMIN_MAY_OPERATE = _env_bool("ADMIN_MAY_OPERATE", False)
    RESERVKORT_APP_HOOKS = (_install_job_queue,)
    OUTBOX_SENDING_LEASE_SECONDS = _env_int("OUTBOX_SENDING_LEASE_SECONDS", 300)
    # How long the dispatcher keeps trying to record a message the server accepted while the
    # database is away (it must not be sent again).
    OUTBOX_MARK_SENT_RETRY_SECONDS = _env_int("OUTBOX_MARK_SENT_RETRY_SECONDS", 60)

    # Operations: /health/ready fails (and the Jobs screen turns red) when the oldest e-mail not
    # yet sent is older than this; LOG_FORMAT=json for one JSON object per log line.
    HEALTH_OUTBOX_MAX_AGE_SECONDS = _env_int("HEALTH_OUTBOX_MAX_AGE_SECONDS", 900)
    LOG_FORMAT = os.environ.get("LOG_FORMAT", "text")
    LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO")

    # The audit chain's anchor outside the database: the HMAC key (AUDIT_HMAC_KEY, or a key
    # file made on first start) and the file the checkpoints are appended to. Keep both off the
    # database server and out of its backups' reach.
    AUDIT_HMAC_KEY = os.environ.get("AUDIT_HMAC_KEY", "")
    AUDIT_HMAC_KEY_FILE = os.environ.get("AUDIT_HMAC_KEY_FILE", "")  # default: instance/
    AUDIT_CHECKPOINT_FILE = os.environ.get("AUDIT_CHECKPOINT_FILE", "")  # default: instance/
    AUDIT_CHECKPOINT_MINUTES = _env_int("AUDIT_CHECKPOINT_MINUTES", 60)
    SMTP_TIMEOUT_SECONDS = _env_int("SMTP_TIMEOUT_SECONDS", 30)

    # Security. Database login for development; client certificates (SITHS card) behind a
    # TLS-terminating proxy in production (AUTH_METHOD=client_cert).
    CLIENT_CERT_LOGIN = os.environ.get("AUTH_METHOD", "db") == "client_cert"
    if CLIENT_CERT_LOGIN:
        AUTH_TYPE = 3  # AUTH_REMOTE_USER: the username is the HSA-id in the certificate
    TRUSTED_PROXIES = tuple(
        p for p in os.environ.get("TRUSTED_PROXIES", "127.0.0.1/32,::1/128").split(",") if p
    )
    CLIENT_CERT_USER_HEADER = os.environ.get("CLIENT_CERT_USER_HEADER", "X-SSL-Client-HSA-ID")
    CLIENT_CERT_VERIFY_HEADER = os.environ.get("CLIENT_CERT_VERIFY_HEADER", "X-SSL-Client-Verify")
    # Behind a TLS-terminating proxy: how many proxies in front of the app append to
    # X-Forwarded-For. The header is believed only when the direct peer is in TRUSTED_PROXIES.
    TRUSTED_PROXY_HOPS = _env_int("TRUSTED_PROXY_HOPS", 1)
    # Sign-in defences (app.signin_limits): failures only, per account and per client address,
    # kept in the database. FAB's own limiter counted every login per address (so one proxy
    # address was one client): off.
    SIGNIN_LIMITS_ENABLED = _env_bool("SIGNIN_LIMITS_ENABLED", True)
    SIGNIN_WINDOW_SECONDS = _env_int("SIGNIN_WINDOW_SECONDS", 15 * 60)
    SIGNIN_ACCOUNT_FAILURES = _env_int("SIGNIN_ACCOUNT_FAILURES", 5)
    SIGNIN_LOCK_MINUTES = _env_int("SIGNIN_LOCK_MINUTES", 30)  # 0: until Admin unlocks
    SIGNIN_ADDRESS_FAILURES = _env_int("SIGNIN_ADDRESS_FAILURES", 30)
    AUTH_RATE_LIMITED = False
    RATELIMIT_ENABLED = _env_bool("RATELIMIT_ENABLED", True)
    RATELIMIT_STORAGE_URI = os.environ.get("REDIS_URL") or "memory://"
    FAB_PASSWORD_COMPLEXITY_ENABLED = True
    FAB_PASSWORD_COMPLEXITY_VALIDATOR = "app.passwords.validate_password"
    # A browser session ends after this long in any case, and after SESSION_IDLE_MINUTES without
    # a request (shared ward PCs); logout and a password change end it at once (app.sessions).
    PERMANENT_SESSION_LIFETIME = _env_int("SESSION_LIFETIME_SECONDS", 8 * 3600)
    SESSION_IDLE_MINUTES = _env_int("SESSION_IDLE_MINUTES", 30)
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = _env_bool("SESSION_COOKIE_SECURE", False)  # True behind TLS


class TestConfig(Config):
    TESTING = True
    RATELIMIT_ENABLED = False
    RATELIMIT_STORAGE_URI = "memory://"
    REDIS_URL = ""
    WTF_CSRF_ENABLED = False
    SECRET_KEY = "test"
    AUDIT_HMAC_KEY = "test-audit-key"
