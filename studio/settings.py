"""Settings for the LTX studio, read from the environment in one place (every name is in the
README's configuration table).

Development needs nothing set: SQLite, filesystem storage, the local fal simulator. Production
(DEBUG off) refuses to start without SECRET_KEY and ALLOWED_HOSTS.
"""
from datetime import timedelta
from pathlib import Path
from typing import Any

import dj_database_url
from botocore.config import Config as BotoConfig
from django.core.exceptions import ImproperlyConfigured

from core.env import env_bool, env_float, env_int, env_list, env_str
from fal_protocol.catalog import VERSIONS as LTX_VERSIONS

BASE_DIR = Path(__file__).resolve().parent.parent

# --- core -----------------------------------------------------------------------------------
DEBUG = env_bool("DEBUG", True)
SECRET_KEY = env_str("SECRET_KEY")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"] if DEBUG else [])
if not DEBUG:
    missing = [name for name, value in (("SECRET_KEY", SECRET_KEY), ("ALLOWED_HOSTS", ALLOWED_HOSTS)) if not value]
    if missing:
        raise ImproperlyConfigured(f"DEBUG is off, so these must be set in the environment: {', '.join(missing)}")
if not SECRET_KEY:
    SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production"
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
# Behind a TLS-terminating reverse proxy that sets X-Forwarded-Proto and X-Forwarded-Host: the
# URLs the studio hands out (gateway status/response URLs, media links) then carry the
# externally visible scheme and host, and sign-in throttling counts the address the proxy saw
# (accounts.client_address). Only enable it when the proxy overwrites those headers.
STUDIO_TRUST_FORWARDED_HEADERS = env_bool("STUDIO_TRUST_FORWARDED_HEADERS", False)
if STUDIO_TRUST_FORWARDED_HEADERS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    USE_X_FORWARDED_HOST = True
# Served over HTTPS only (TLS at the proxy above, or in gunicorn): cookies never travel over plain
# HTTP, plain-HTTP requests are redirected, and browsers are told (HSTS) to use HTTPS for
# STUDIO_HSTS_SECONDS (0: no HSTS). The probes stay on plain HTTP: load balancers and scrapers
# call them from inside. Behind a proxy this needs STUDIO_TRUST_FORWARDED_HEADERS, or every request
# looks like plain HTTP and is redirected to itself.
STUDIO_HTTPS = env_bool("STUDIO_HTTPS", False)
if STUDIO_HTTPS:
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = True
    SECURE_REDIRECT_EXEMPT = [r"^(livez|healthz|metrics)$"]
    SECURE_HSTS_SECONDS = env_int("STUDIO_HSTS_SECONDS", 31536000)
    if SECURE_HSTS_SECONDS < 0:  # Django would send "max-age=-1", which browsers ignore
        raise ImproperlyConfigured(f"STUDIO_HSTS_SECONDS must be 0 (no HSTS) or more, got {SECURE_HSTS_SECONDS}")
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("STUDIO_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("STUDIO_HSTS_PRELOAD", False)
STUDIO_ALLOW_SIGNUP = env_bool("STUDIO_ALLOW_SIGNUP", True)
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "studio@localhost")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "django_q",
    "axes",
    "accounts",
    "storage",
    "generations",
    "webhooks",
    "moderation",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",  # static files (see "production" below)
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "studio.request_limits.RequestLimitsMiddleware",  # bodies over the limits: JSON 413s under /api/ and /fal/
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # turns a locked-out sign-in into the lockout page
]

ROOT_URLCONF = "studio.urls"
WSGI_APPLICATION = "studio.wsgi.application"
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
                "web.context_processors.studio",
            ],
        },
    },
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))  # where collectstatic writes
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

# --- sign-in throttling (django-axes) -------------------------------------------------------
# Failed sign-ins (the studio's form and the admin's) are counted in the database, so every web
# process sees the same count. After STUDIO_LOGIN_FAILURE_LIMIT failures for one username from one
# address, that pair is locked out for STUDIO_LOGIN_LOCKOUT_MINUTES, even with the right password.
# Per pair rather than per username, so that nobody can lock a user out from elsewhere.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env_int("STUDIO_LOGIN_FAILURE_LIMIT", 10)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("STUDIO_LOGIN_LOCKOUT_MINUTES", 15))
if AXES_FAILURE_LIMIT < 1 or AXES_COOLOFF_TIME < timedelta(minutes=1):  # to axes, 0 locks everyone out / for good
    raise ImproperlyConfigured("STUDIO_LOGIN_FAILURE_LIMIT and STUDIO_LOGIN_LOCKOUT_MINUTES must be at least 1")
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_CLIENT_IP_CALLABLE = "accounts.client_address.client_address"
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "web.account_views.sign_in_locked_out"
AXES_DISABLE_ACCESS_LOG = True  # failures are kept (AccessAttempt, in the admin); successes are not

# --- database -------------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
# Health checks: a persistent connection broken by a database restart is replaced at the start of
# the next request instead of failing it.
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 0),
                                              conn_health_checks=True)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several processes share the file (web, workers, their helpers): wait for locks instead of failing
    # at once, and let tests that spawn processes use a file-backed test database (in-memory ones are
    # per process). The write-ahead log lets readers (a page, an event stream, the tracker's looks)
    # go on while one process writes, where the default rollback journal blocks the writer behind
    # every reader; with it, `synchronous=NORMAL` syncs at checkpoints, not at every commit (a power
    # cut may lose the last commits, never the file).
    DATABASES["default"]["OPTIONS"] = {"timeout": 20, "transaction_mode": "IMMEDIATE",
                                       "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL"}
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / "test-db.sqlite3")}

# --- REST API -------------------------------------------------------------------------------
REST_FRAMEWORK: dict[str, Any] = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "api.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "api.schema.StudioAutoSchema",
    "EXCEPTION_HANDLER": "api.errors.api_exception_handler",
    "DEFAULT_THROTTLE_CLASSES": ["api.throttling.ApiThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "api": env_str("STUDIO_API_RATE", "600/min"),
        "create": env_str("STUDIO_API_CREATE_RATE", "60/min"),
        # the gateway's storage upload: initiate and PUT each count (two calls per uploaded file)
        "upload": env_str("STUDIO_UPLOAD_RATE", "120/min"),
    },
    # Request JSON nested deeper than core.jsonbody.MAX_JSON_DEPTH is a 400, never a RecursionError.
    "DEFAULT_PARSER_CLASSES": [
        "api.parsers.BoundedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "api.pagination.CursorPagination",
    "PAGE_SIZE": 20,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "LTX Studio API",
    "VERSION": "1.0.0",
    "DESCRIPTION": "LTX Video (LTX-2.3 and LTX-2.0) text-to-video and image-to-video jobs, their videos, usage and "
                   "webhooks. "
                   "Authenticate with `Authorization: Bearer <key>` (or `Key <key>`). Errors are "
                   '`{"code", "message", "details"}`.',
    "COMPONENT_SPLIT_REQUEST": True,
}

# --- task queue (django-q2) -----------------------------------------------------------------
# timeout < retry always: a task killed at `timeout` must not be redelivered while still running.
Q_CLUSTER: dict[str, Any] = {
    "name": "studio",
    "workers": env_int("Q_WORKERS", 2),
    "timeout": env_int("Q_TIMEOUT", 300),
    "retry": env_int("Q_RETRY", 330),
    "max_attempts": 5,
    "ack_failures": False,
    "save_limit": 500,
    "catch_up": False,
    "poll": 0.1,
    # Never recycle a worker (django-q2 does after 500 tasks by default). The tracking chain's lanes
    # live in a worker and would end with it, and `manage.py workers` takes a cluster process that
    # vanishes right after waiting on a queue for one killed holding the queue's lock, and restarts
    # the whole cluster (core/supervisor.py): each recycle would cost the cluster its work in hand.
    "recycle": 10**12,
}
REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

# --- fal upstream ---------------------------------------------------------------------------
FALSIM_PORT = env_int("FALSIM_PORT", 8765)
FALSIM_KEY = env_str("FALSIM_KEY", "falsim-local-key")
FAL_KEY = env_str("FAL_KEY")
FAL_QUEUE_URL = env_str("FAL_QUEUE_URL")
FAL_USES_SIMULATOR = not FAL_KEY and not FAL_QUEUE_URL
if FAL_USES_SIMULATOR:
    FAL_QUEUE_URL = f"http://127.0.0.1:{FALSIM_PORT}"
    FAL_REST_URL = env_str("FAL_REST_URL", FAL_QUEUE_URL)
    FAL_API_URL = env_str("FAL_API_URL", FAL_QUEUE_URL)
    FAL_KEY = FALSIM_KEY
else:
    FAL_QUEUE_URL = FAL_QUEUE_URL or "https://queue.fal.run"
    FAL_REST_URL = env_str("FAL_REST_URL", "https://rest.fal.ai")
    # fal's platform API: its request listing tells whether an ambiguous submit reached fal.
    FAL_API_URL = env_str("FAL_API_URL", "https://api.fal.ai")
FAL_CONNECT_TIMEOUT = env_float("FAL_CONNECT_TIMEOUT", 5.0)
FAL_READ_TIMEOUT = env_float("FAL_READ_TIMEOUT", 30.0)
FAL_WEBHOOK_JWKS_URL = env_str("FAL_WEBHOOK_JWKS_URL", f"{FAL_QUEUE_URL}/.well-known/jwks.json" if FAL_USES_SIMULATOR
                               else "https://rest.alpha.fal.ai/.well-known/jwks.json")

# --- studio behaviour -----------------------------------------------------------------------
STUDIO_BASE_URL = env_str("STUDIO_BASE_URL").rstrip("/")
# Submit every job with its own fal webhook URL (under STUDIO_BASE_URL, which fal must reach), so a
# completion is seen at once; polling stays the backstop. On by default when STUDIO_BASE_URL is set.
STUDIO_FAL_WEBHOOKS = env_bool("STUDIO_FAL_WEBHOOKS", bool(STUDIO_BASE_URL))
STUDIO_PROMPT_MAX_CHARS = env_int("STUDIO_PROMPT_MAX_CHARS", 2500)
STUDIO_UPSTREAM_MODEL_PREFIX = env_str("STUDIO_UPSTREAM_MODEL_PREFIX", "fal-ai/ltx-2")
# The LTX version the short model names (t2v, t2v-fast, i2v, i2v-fast) mean; explicit ids mean themselves.
STUDIO_LTX_VERSION = env_str("STUDIO_LTX_VERSION", "2.3")
if STUDIO_LTX_VERSION not in LTX_VERSIONS:
    raise ImproperlyConfigured(
        f"STUDIO_LTX_VERSION must be one of {', '.join(LTX_VERSIONS)}, not {STUDIO_LTX_VERSION!r}")
STUDIO_ALLOWED_PRIVATE_HOSTS = env_list("STUDIO_ALLOWED_PRIVATE_HOSTS")
STUDIO_MAX_VIDEO_BYTES = env_int("STUDIO_MAX_VIDEO_BYTES", 2 * 1024**3)
STUDIO_MAX_IMAGE_BYTES = env_int("STUDIO_MAX_IMAGE_BYTES", 10 * 1000 * 1000)  # start images for image-to-video
STUDIO_MAX_IMAGE_PIXELS = env_int("STUDIO_MAX_IMAGE_PIXELS", 40_000_000)
STUDIO_IMAGE_FETCH_TIMEOUT_SECONDS = env_float("STUDIO_IMAGE_FETCH_TIMEOUT_SECONDS", 10.0)
# The largest legitimate request body is JSON carrying a start image as a base64 data URI (REST
# create, gateway submit): let it through Django's in-memory body limit, with room for the rest.
DATA_UPLOAD_MAX_MEMORY_SIZE = STUDIO_MAX_IMAGE_BYTES * 4 // 3 + 1_000_000
# Start images up to this size go to fal as a data URI; larger ones through fal's storage upload.
STUDIO_FAL_DATA_URI_MAX_BYTES = env_int("STUDIO_FAL_DATA_URI_MAX_BYTES", 256 * 1024)
STUDIO_DEMO_USERNAME = env_str("STUDIO_DEMO_USERNAME", "demo")
STUDIO_DEMO_PASSWORD = env_str("STUDIO_DEMO_PASSWORD", "demo-password")
# How long a submit whose outcome is unknown (timeout after the body was sent) waits for fal to
# reveal it before it is failed as `submit_unknown`.
STUDIO_SUBMIT_UNKNOWN_GRACE_SECONDS = env_int("STUDIO_SUBMIT_UNKNOWN_GRACE_SECONDS", 600)
STUDIO_MAX_SUBMIT_ATTEMPTS = env_int("STUDIO_MAX_SUBMIT_ATTEMPTS", 5)
# Whether fal may keep each request's payloads (prompt, start image) for 30 days (X-Fal-Store-IO).
# Off by default: they are the users' data. With it on, fal's request listing can match an ambiguous
# submit by its exact payload; with it off only by its send time (see generations/services/ambiguous.py).
STUDIO_FAL_STORE_IO = env_bool("STUDIO_FAL_STORE_IO", False)
# Submits run in a bounded lane of the tracking chain, stores in one of the store driver's (its own
# process under `manage.py workers`; the chain's when none runs): this many of each at once per
# process (generations/lanes.py). Each lane thread holds a database connection while it works; a store
# spools its copy to a temporary file, so memory stays a chunk per store.
STUDIO_DRIVER_SUBMITS = env_int("STUDIO_DRIVER_SUBMITS", 16)
STUDIO_DRIVER_STORES = env_int("STUDIO_DRIVER_STORES", 16)
# At most this many jobs at fal at once (submitting, queued or running; unset: no limit). When it
# binds, the next job sent is the oldest of the user with the fewest jobs at fal (round-robin).
STUDIO_FAL_MAX_IN_FLIGHT = env_int("STUDIO_FAL_MAX_IN_FLIGHT", 0) or None
# Without fal's webhooks, `manage.py workers` also runs a follower of fal's status streams: up to this
# many jobs at once are followed (one connection each, on one event loop, in a process of its own) and
# polled by the tracking chain only as a backstop; the rest are polled. 0: poll only.
STUDIO_FAL_STATUS_STREAMS = env_int("STUDIO_FAL_STATUS_STREAMS", 1000)
if STUDIO_FAL_STATUS_STREAMS < 0:
    raise ImproperlyConfigured(f"STUDIO_FAL_STATUS_STREAMS must be 0 (poll only) or more, "
                               f"got {STUDIO_FAL_STATUS_STREAMS}")
if min(STUDIO_DRIVER_SUBMITS, STUDIO_DRIVER_STORES) < 1:
    raise ImproperlyConfigured("STUDIO_DRIVER_SUBMITS and STUDIO_DRIVER_STORES must be at least 1")
if STUDIO_FAL_MAX_IN_FLIGHT is not None and STUDIO_FAL_MAX_IN_FLIGHT < 1:
    raise ImproperlyConfigured(f"STUDIO_FAL_MAX_IN_FLIGHT must be at least 1 (or unset: no limit), "
                               f"got {STUDIO_FAL_MAX_IN_FLIGHT}")
# While fal refuses the account (locked, out of balance, unknown key) the studio pauses itself and
# asks fal this often whether it works again (a storage upload initiate: free, and refused by a lock).
STUDIO_PROVIDER_PROBE_SECONDS = env_float("STUDIO_PROVIDER_PROBE_SECONDS", 60.0)
# `generate --wait` says no worker cluster is running when its job is unclaimed for this long.
STUDIO_NO_WORKER_SECONDS = env_int("STUDIO_NO_WORKER_SECONDS", 20)
# How long a signed media link handed out by the API (or in a webhook) stays valid.
STUDIO_MEDIA_LINK_SECONDS = env_int("STUDIO_MEDIA_LINK_SECONDS", 3600)
# A video reported by this many distinct users is hidden automatically and waits for review (0: never).
STUDIO_REPORTS_TO_HIDE = env_int("STUDIO_REPORTS_TO_HIDE", 3)
# Live (unrevoked) API keys one user may hold; rates count per user whatever the number of keys.
STUDIO_MAX_API_KEYS = env_int("STUDIO_MAX_API_KEYS", 20)

# --- fal-compatible gateway (/fal/) ---------------------------------------------------------
# Ed25519 private key (base64 of the raw 32 bytes) that signs the gateway's fal-style webhooks;
# in development one is generated and kept in the database.
STUDIO_SIGNING_KEY = env_str("STUDIO_SIGNING_KEY")
if not DEBUG and not STUDIO_SIGNING_KEY:
    raise ImproperlyConfigured("DEBUG is off, so STUDIO_SIGNING_KEY must be set (base64 of a raw Ed25519 key; "
                               "`python manage.py generate_signing_key` prints one)")
# How long an upload URL handed out by the gateway's storage flow stays usable, and how long the
# uploaded file is kept (it counts in the owner's storage until then).
STUDIO_UPLOAD_URL_SECONDS = env_int("STUDIO_UPLOAD_URL_SECONDS", 3600)
STUDIO_UPLOAD_TTL_SECONDS = env_int("STUDIO_UPLOAD_TTL_SECONDS", 24 * 3600)
# The status stream's keep-alive comment interval (fal sends one every 15 s).
STUDIO_SSE_KEEPALIVE_SECONDS = env_float("STUDIO_SSE_KEEPALIVE_SECONDS", 15.0)
# Each open status stream holds a web server thread: one user may hold at most this many at once
# (across all processes), and a stream ends after STUDIO_SSE_MAX_SECONDS however far its job got.
# fal's JS client does not reconnect a stream that ends (it fetches the result at once), so the limit
# must outlast any real job's queue and run.
STUDIO_MAX_STREAMS_PER_USER = env_int("STUDIO_MAX_STREAMS_PER_USER", 10)
STUDIO_SSE_MAX_SECONDS = env_float("STUDIO_SSE_MAX_SECONDS", 3600.0)

# --- quotas (per user; overrides in the admin) --------------------------------------------
STUDIO_DEFAULT_STORAGE_BYTES = env_int("STUDIO_DEFAULT_STORAGE_BYTES", 10 * 1000**3)
STUDIO_DEFAULT_MONTHLY_SPEND_USD = env_float("STUDIO_DEFAULT_MONTHLY_SPEND_USD", 50.0)
STUDIO_DEFAULT_ACTIVE_JOBS = env_int("STUDIO_DEFAULT_ACTIVE_JOBS", 5)

# --- storage --------------------------------------------------------------------------------
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(BASE_DIR / "media")))
MEDIA_URL = "/media/"
AWS_STORAGE_BUCKET_NAME = env_str("AWS_STORAGE_BUCKET_NAME")
AWS_S3_ENDPOINT_URL = env_str("AWS_S3_ENDPOINT_URL") or None
AWS_ACCESS_KEY_ID = env_str("AWS_ACCESS_KEY_ID") or None
AWS_SECRET_ACCESS_KEY = env_str("AWS_SECRET_ACCESS_KEY") or None
AWS_S3_REGION_NAME = env_str("AWS_S3_REGION_NAME", "us-east-1")
AWS_S3_ADDRESSING_STYLE = "path"
AWS_S3_SIGNATURE_VERSION = "s3v4"
AWS_S3_FILE_OVERWRITE = True  # object keys are deterministic: a rerun replaces the same object
AWS_DEFAULT_ACL = None
AWS_QUERYSTRING_EXPIRE = env_int("STUDIO_PRESIGN_SECONDS", 300)
# Explicit timeouts, and botocore's standard retries (which also retry a failed multipart part).
AWS_S3_CLIENT_CONFIG = BotoConfig(
    s3={"addressing_style": AWS_S3_ADDRESSING_STYLE},
    signature_version=AWS_S3_SIGNATURE_VERSION,
    connect_timeout=env_float("AWS_S3_CONNECT_TIMEOUT", 5.0),
    read_timeout=env_float("AWS_S3_READ_TIMEOUT", 60.0),
    retries={"max_attempts": 5, "mode": "standard"},
)
if AWS_STORAGE_BUCKET_NAME:
    _default_storage = {"BACKEND": "storages.backends.s3.S3Storage"}
else:
    _default_storage = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
STORAGES = {
    "default": _default_storage,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# --- production: static files, metrics (docs/production.md) ---------------------------------
# whitenoise serves /static/ from STATIC_ROOT in the web process. With DEBUG off the files are
# content-hashed and pre-compressed by `collectstatic` (make run-prod runs it), so they can be
# cached for a year; `default` storage above is untouched.
if not DEBUG:
    STORAGES["staticfiles"] = {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"}
# Pinned to DEBUG as configured (test runners switch DEBUG off at run time): in development and
# tests whitenoise finds files per request without collectstatic; in production it indexes
# STATIC_ROOT once at start.
WHITENOISE_AUTOREFRESH = DEBUG
WHITENOISE_USE_FINDERS = DEBUG
# Bearer token that lets a Prometheus scraper read /metrics (staff sessions always can). Unset:
# only staff sessions.
STUDIO_METRICS_TOKEN = env_str("STUDIO_METRICS_TOKEN")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "generations": {"handlers": ["console"], "level": env_str("STUDIO_LOG_LEVEL", "INFO")},
        "storage": {"handlers": ["console"], "level": env_str("STUDIO_LOG_LEVEL", "INFO")},
    },
}
