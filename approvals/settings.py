"""One settings module, driven by the environment.

With no environment at all it runs the embedded default: SQLite and the in-memory channel layer
under DATA_DIR, DEBUG off. `manage.py up` turns DEBUG on. Production sets DATABASE_URL,
REDIS_URL, TEMPORAL_ADDRESS, SECRET_KEY, ALLOWED_HOSTS and the EMAIL_* variables.
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from workflows.types import BULK_TASK_QUEUE, INTERACTIVE_TASK_QUEUE, WEBHOOK_TASK_QUEUE

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean; use 1/0, true/false, yes/no or on/off.")


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DATA_DIR = Path(os.environ.get("DATA_DIR", BASE_DIR / "data"))
DATA_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DJANGO_DEBUG", False)


def _secret_key() -> str:
    """SECRET_KEY from the environment, else a random key kept beside the local data."""
    if key := os.environ.get("SECRET_KEY"):
        return key
    path = DATA_DIR / "secret_key"
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
SITE_URL = os.environ.get("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "approvals.apps.AdminConfig",  # django.contrib.admin, logging refused attempts
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "channels",
    "csp",
    "ninja",  # the API's docs page, from its own static files
    "approvals",
]

MIDDLEWARE = [
    "approvals.metrics.RequestMetrics",  # outermost: times and counts every answer
    "approvals.logs.RequestIds",
    "django.middleware.security.SecurityMiddleware",
    "approvals.middleware.StaticFiles",  # WhiteNoise, able to pass requests on asynchronously
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "approvals.views.errors.NotFoundPage",
    "approvals.api.auth.TokenUseLog",
]

ROOT_URLCONF = "approvals.urls"
ASGI_APPLICATION = "approvals.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "approvals.context_processors.waiting",
            ],
        },
    },
]

# SQLite by default; DATABASE_URL (postgres://...) selects PostgreSQL through psycopg 3.
# Django closes its connection after each request and activity (its advice under ASGI, where
# persistent connections leak across threads); on PostgreSQL that hands it back to psycopg's pool
# in this process, so no request or activity pays for a new connection. DB_POOL_SIZE is each
# process's most (0: no pool, a connection each time, as behind an external pooler).
DB_POOL_SIZE = int(os.environ.get("DB_POOL_SIZE", "12"))
DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{DATA_DIR / 'db.sqlite3'}",
        conn_max_age=0,
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and DB_POOL_SIZE > 0:
    # (With health checks on, the pool checks each connection before it hands it out.)
    DATABASES["default"]["OPTIONS"] = {"pool": {"min_size": 1, "max_size": DB_POOL_SIZE, "timeout": 10}}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and tests share one file from several threads and processes: wait for locks
    # instead of failing, take write locks up front, and let readers run beside a writer.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not :memory:, so the test server and worker threads see the same test database.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test-db.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", DATA_DIR / "static"))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
# WhiteNoise serves static/ straight from the source folders, so no collectstatic step is needed;
# a deployment may still run collectstatic into STATIC_ROOT for compressed, cached copies.
WHITENOISE_USE_FINDERS = True

# Channel layer: Redis in production (web and worker are separate processes), memory otherwise.
REDIS_URL = os.environ.get("REDIS_URL", "")


# Each consumer waits on Redis in a blocking pop of 5 s, over and over. redis-py 8 gives every
# read a 5 s timeout by default, and whichever of the two came first decided whether an idle
# socket lived or died; a read timeout well above the pop keeps it, and still notices a Redis
# that went away.
REDIS_READ_TIMEOUT_SECONDS = 30


def redis_channel_layers(url: str) -> dict[str, Any]:
    host = {"address": url, "socket_timeout": REDIS_READ_TIMEOUT_SECONDS}
    return {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [host]}}}


if REDIS_URL:
    CHANNEL_LAYERS = redis_channel_layers(REDIS_URL)
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# Email: SMTP from EMAIL_* in production. In DEBUG without EMAIL_HOST, mail is written under
# DATA_DIR/mail; every message is also kept in the outbox table that staff read at /mailbox/.
EMAIL_HOST = os.environ.get("EMAIL_HOST", "")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = int(os.environ.get("EMAIL_TIMEOUT", "20"))
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "approvals@localhost")
EMAIL_FILE_PATH = DATA_DIR / "mail"
EMAIL_BACKEND = os.environ.get(
    "EMAIL_BACKEND",
    "django.core.mail.backends.filebased.EmailBackend"
    if DEBUG and not EMAIL_HOST
    else "django.core.mail.backends.smtp.EmailBackend",
)

# Purchase orders: POSTed to this endpoint (with an Idempotency-Key) when set; otherwise, the
# embedded default, recorded in the app's own table.
PURCHASE_ORDER_URL = os.environ.get("PURCHASE_ORDER_URL", "").rstrip("/")
PURCHASE_ORDER_TIMEOUT = float(os.environ.get("PURCHASE_ORDER_TIMEOUT", "10"))
# Access grants: POSTed to this endpoint (and their ends to <url>/revoke) when set, with the same
# idempotency discipline; otherwise recorded in the app's own table only.
ACCESS_GRANT_URL = os.environ.get("ACCESS_GRANT_URL", "").rstrip("/")
ACCESS_GRANT_TIMEOUT = float(os.environ.get("ACCESS_GRANT_TIMEOUT", "10"))
# Webhooks (subscribers are registered by staff): each POST's deadline, and how long a delivery
# is retried before it is shown as failing.
WEBHOOK_TIMEOUT = float(os.environ.get("WEBHOOK_TIMEOUT", "10"))
WEBHOOK_RETRY_HOURS = float(os.environ.get("WEBHOOK_RETRY_HOURS", "24"))
# Agent actions: an approval token holds this long after the decision (approvals.services.agents);
# a waiting agent's answer is looked up again this often even when no change is heard (a live
# push is best effort), and a wait lasts this long at most.
AGENT_TOKEN_SECONDS = int(os.environ.get("AGENT_TOKEN_SECONDS", "3600"))
AGENT_WAIT_RECHECK_SECONDS = float(os.environ.get("AGENT_WAIT_RECHECK_SECONDS", "30"))
AGENT_WAIT_MAX_SECONDS = int(os.environ.get("AGENT_WAIT_MAX_SECONDS", "300"))
MCP_WAIT_MAX_SECONDS = int(os.environ.get("MCP_WAIT_MAX_SECONDS", "3600"))  # request_approval's wait
MCP_PROGRESS_SECONDS = float(os.environ.get("MCP_PROGRESS_SECONDS", "10"))  # between progress notes

# Temporal.
TEMPORAL_ADDRESS = os.environ.get("TEMPORAL_ADDRESS", "127.0.0.1:7233")
TEMPORAL_NAMESPACE = os.environ.get("TEMPORAL_NAMESPACE", "default")
TEMPORAL_UI_URL = os.environ.get("TEMPORAL_UI_URL", "http://127.0.0.1:8233").rstrip("/")
TEMPORAL_TASK_QUEUE = os.environ.get("TEMPORAL_TASK_QUEUE", INTERACTIVE_TASK_QUEUE)
TEMPORAL_BULK_TASK_QUEUE = os.environ.get("TEMPORAL_BULK_TASK_QUEUE", BULK_TASK_QUEUE)
TEMPORAL_WEBHOOK_TASK_QUEUE = os.environ.get("TEMPORAL_WEBHOOK_TASK_QUEUE", WEBHOOK_TASK_QUEUE)
# Run the worker inside the web process (the embedded default, where the in-memory channel layer
# only reaches consumers in its own process); production runs `manage.py temporal_worker` apart.
TEMPORAL_WORKER_IN_WEB = env_bool("TEMPORAL_WORKER_IN_WEB", False)
# How long a web request waits on Temporal before telling the user it will catch up later.
TEMPORAL_RPC_TIMEOUT = timedelta(seconds=float(os.environ.get("TEMPORAL_RPC_TIMEOUT", "5")))
# How long a workflow task waits for the worker that has the workflow cached before any worker
# may take it (replaying its history). Temporal's 10 s meant that after a worker died, the first
# action on each workflow it had cached waited 10 s, past TEMPORAL_RPC_TIMEOUT: told "pending".
TEMPORAL_STICKY_TIMEOUT = timedelta(seconds=float(os.environ.get("TEMPORAL_STICKY_TIMEOUT", "3")))
# How often the worker process retries starting workflows that could not be started on submit.
OUTBOX_POLL_SECONDS = float(os.environ.get("OUTBOX_POLL_SECONDS", "5"))
# How often the worker process that delivers webhooks starts the deliveries recorded meanwhile.
WEBHOOK_POLL_SECONDS = float(os.environ.get("WEBHOOK_POLL_SECONDS", "1"))
# How often the worker process asks Temporal for workflows that stopped for good (failed,
# terminated, timed out), to say so on their requests' pages.
STOPPED_POLL_SECONDS = float(os.environ.get("STOPPED_POLL_SECONDS", "10"))

# Production hardening. Cookies are secure whenever DEBUG is off (browsers accept secure cookies
# from http://127.0.0.1 and localhost, so the embedded default still works). HTTPS — redirect
# and HSTS — is on for a deployment, recognised by its own SECRET_KEY with DEBUG off; HTTPS=0
# turns it off for plain HTTP on a private network, HTTPS=1 forces it on.
HTTPS = env_bool("HTTPS", not DEBUG and bool(os.environ.get("SECRET_KEY")))
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SESSION_COOKIE_HTTPONLY = True
SECURE_SSL_REDIRECT = HTTPS
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", 31_536_000 if HTTPS else 0))
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", HTTPS)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", HTTPS)
if env_bool("BEHIND_TLS_PROXY", False):
    # Only behind a proxy that sets this header itself: otherwise clients could claim HTTPS.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# Content-Security-Policy: our own scripts and styles only, never inline script or eval (htmx is
# configured in _base.html not to need either). Websockets are same-origin ('self').
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# Login attempts: after this many failures for one username from one address, wait this long.
LOGIN_FAILURE_LIMIT = int(os.environ.get("LOGIN_FAILURE_LIMIT", "5"))
LOGIN_LOCKOUT_SECONDS = int(os.environ.get("LOGIN_LOCKOUT_SECONDS", "900"))
# The cache counts failed logins: Redis when there is one (shared by every web process).
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}

# Plain lines by default; one JSON object a line (with request and workflow ids) in production.
LOG_FORMAT = os.environ.get("LOG_FORMAT", "json" if not DEBUG and os.environ.get("SECRET_KEY") else "plain")
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT is plain or json, not {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "approvals.logs.Context"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {"()": "approvals.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["context"]}
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# The integration API (/api/v1/): calls per token per window (429 with Retry-After beyond).
API_RATE_LIMIT = int(os.environ.get("API_RATE_LIMIT", "300"))
API_RATE_WINDOW_SECONDS = int(os.environ.get("API_RATE_WINDOW_SECONDS", "60"))

# Operations. The SDK's own metrics from a worker process, for Prometheus (e.g. 0.0.0.0:9464;
# unset: none). The web's /metrics asks for `Authorization: Bearer <METRICS_TOKEN>` when it is set.
TEMPORAL_METRICS_ADDRESS = os.environ.get("TEMPORAL_METRICS_ADDRESS", "")
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
# The proxy and the orchestrator probe these over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
