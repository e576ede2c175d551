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
    SECRET_KEY = os.environ.get("SECRET_KEY", "dev-only-change-me")
    SQLALCHEMY_DATABASE_URI = os.environ.get(
        "DATABASE_URL", f"sqlite:///{_INSTANCE / 'reservkort.db'}"
    )
    SQLALCHEMY_TRACK_MODIFICATIONS = False
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
    FAB_ADD_SECURITY_API = True
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
    SERVICECENTER_ADDRESS = os.environ.get(
        "SERVICECENTER_ADDRESS", "Servicecenter, Box 1, 301 80 Halmstad"
    )
    READER_BRIDGE_URL = os.environ.get("READER_BRIDGE_URL", "http://127.0.0.1:8765")
    MAX_UPLOAD_BYTES = _env_int("MAX_UPLOAD_BYTES", 5 * 1024 * 1024)

    FAB_ROLES = {}  # filled in app/roles.py
    RESERVKORT_APP_HOOKS = (_install_job_queue,)
    OUTBOX_SENDING_LEASE_SECONDS = _env_int("OUTBOX_SENDING_LEASE_SECONDS", 300)
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
    AUTH_RATE_LIMITED = True
    RATELIMIT_ENABLED = _env_bool("RATELIMIT_ENABLED", True)
    AUTH_RATE_LIMIT = os.environ.get("AUTH_RATE_LIMIT", "10 per 5 minutes")
    RATELIMIT_STORAGE_URI = os.environ.get("REDIS_URL") or "memory://"
    FAB_PASSWORD_COMPLEXITY_ENABLED = True
    FAB_PASSWORD_COMPLEXITY_VALIDATOR = "app.passwords.validate_password"
    PERMANENT_SESSION_LIFETIME = _env_int("SESSION_LIFETIME_SECONDS", 8 * 3600)
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
