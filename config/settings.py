"""Parley settings. Every knob comes from the environment (README, "Configuration").

With no environment at all, Parley runs on embedded defaults: a SQLite file
under ``var/`` and Celery's filesystem transport, so ``make run`` and
``make test`` need nothing but Python. ``DATABASE_URL`` and ``REDIS_URL``
switch to PostgreSQL and Redis.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("PARLEY_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

env = environ.Env()

# "production" turns on the deploy checklist: a required SECRET_KEY, HTTPS-only
# cookies, HSTS and JSON logs. "development" is what `make run` uses.
PARLEY_ENV = env.str("PARLEY_ENV", default="development")
PRODUCTION = PARLEY_ENV == "production"

if PRODUCTION:
    SECRET_KEY = env.str("SECRET_KEY")  # required: no default in production
else:
    SECRET_KEY = env.str("SECRET_KEY", default="parley-development-only-not-secret")
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["*"] if not PRODUCTION else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "parley.core",
    "parley.live",
    "parley.tenants",
    "parley.outbox",
    "parley.conversations",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "parley.core.middleware.RequestContextMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Processes ------------------------------------------------------------------
# "live" is the ASGI process of requests that wait (SPEC section 7): config/asgi.py
# sets it. It has its own URLs, no sync-only middleware and pooled connections.
PARLEY_PROCESS = env.str("PARLEY_PROCESS", default="web")
LIVE_PROCESS = PARLEY_PROCESS == "live"
if LIVE_PROCESS:
    ROOT_URLCONF = "config.urls_live"
    # WhiteNoise is sync-only: under ASGI one sync middleware makes Django run
    # every request, waits included, on a thread of its own. config/asgi.py
    # serves the static files instead.
    MIDDLEWARE = [m for m in MIDDLEWARE if not m.startswith("whitenoise.")]

# --- Database -----------------------------------------------------------------
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'parley.sqlite3'}"),
}
_db = DATABASES["default"]
# Persistent connections: a new connection per request cut a DRF insert
# endpoint from 1,054 to 276 req/s on the reference machine.
_db["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=600)
_db["CONN_HEALTH_CHECKS"] = env.bool("CONN_HEALTH_CHECKS", default=False)
# PostgreSQL: server-side parameters, and psycopg prepares the statements a
# connection repeats (after 5 runs, psycopg's default, which Django turns off)
# so PostgreSQL skips parsing and planning them. Off behind a pooler in
# transaction mode (PgBouncer), which cannot keep a prepared statement.
if _db["ENGINE"] == "django.db.backends.postgresql" and env.bool(
    "DATABASE_SERVER_SIDE_BINDING", default=True
):
    _db.setdefault("OPTIONS", {}).update(server_side_binding=True, prepare_threshold=5)
if LIVE_PROCESS and _db["ENGINE"] == "django.db.backends.postgresql":
    # Under ASGI each request's sync code runs on a thread of its own, so
    # persistent connections would pile up, one per thread: a pool instead,
    # which a waiting request never holds (L-1).
    _db["CONN_MAX_AGE"] = 0
    _db.setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": env.int("LIVE_DB_POOL_SIZE", default=10),
        "timeout": 10,
    }
if _db["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE takes SQLite's write lock at BEGIN, so every transaction is
    # serialised: the embedded stand-in for PostgreSQL's row locks.
    _db["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # End-to-end tests share the test database with worker processes, so it
    # must be a file, not SQLite's default in-memory test database.
    _db["TEST"] = {"NAME": str(VAR_DIR / "test-parley.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Parley rules (SPEC sections 2 and 4) --------------------------------------
# Every window runs on server arrival time, never on the event timestamp (W-7).
GROUP_WINDOW = timedelta(seconds=env.float("GROUP_WINDOW_SECONDS", default=5.0))
ORPHAN_TOLERANCE = timedelta(seconds=env.float("ORPHAN_TOLERANCE_SECONDS", default=6.0))
# G-6: optional cap on a group's total wait, off (None) by default.
_max_wait = env.float("GROUP_MAX_WAIT_SECONDS", default=0.0)
GROUP_MAX_WAIT = timedelta(seconds=_max_wait) if _max_wait > 0 else None
# G-7: the callable that writes a reply for a closed group.
REPLY_WRITER = env.str("REPLY_WRITER", default="parley.conversations.replies.list_message_ids")
REPLY_LANGUAGE = env.str("REPLY_LANGUAGE", default="en")
# How long a runner owns a closed group while it writes the reply. A runner
# that dies is replaced by the sweeper after this, so it bounds the lateness
# of a reply after a worker crash (G-4: 30 s) and must exceed the task's hard
# time limit.
REPLY_LEASE = timedelta(seconds=env.float("REPLY_LEASE_SECONDS", default=20.0))
# The sweeper answers due groups: a reply lands between its due time and one
# interval later (plus the time to write it).
SWEEP_INTERVAL = timedelta(seconds=env.float("SWEEP_INTERVAL_SECONDS", default=0.25))
SWEEP_BATCH_SIZE = env.int("SWEEP_BATCH_SIZE", default=200)
# On PostgreSQL a NEW_MESSAGE is stored by one database function call, and the
# sweeper claims and records due groups in batches (migrations 0002, 0003).
# False runs the portable steps instead, as on SQLite; the test suite runs
# both.
DATABASE_FUNCTIONS = True

# --- Tenants (SPEC Q-1) ----------------------------------------------------------
# Conversations that name no tenant belong to this one (seed 000 clients).
DEFAULT_TENANT_ID = UUID(env.str("DEFAULT_TENANT_ID", default=str(UUID(int=0))))
DEFAULT_TENANT_TIME_ZONE = env.str("DEFAULT_TENANT_TIME_ZONE", default="UTC")
try:
    ZoneInfo(DEFAULT_TENANT_TIME_ZONE)
except (ZoneInfoNotFoundError, ValueError) as _exc:
    raise ImproperlyConfigured(
        f"DEFAULT_TENANT_TIME_ZONE={DEFAULT_TENANT_TIME_ZONE!r} is not an IANA time zone."
    ) from _exc

# --- Outbox (STYLE "Outbox"; SPEC T-4, C-4) ----------------------------------------
# How long an event stays in the outbox once every reader that must see it
# (the analytics exporter) has: a console that reconnects after longer than
# this reloads instead of replaying.
OUTBOX_RETENTION = timedelta(hours=env.float("OUTBOX_RETENTION_HOURS", default=24.0))

# --- The live process (SPEC section 7) ------------------------------------------
LIVE_PORT = env.int("LIVE_PORT", default=env.int("PORT", default=8000) + 1)
# A waiter looks at the database again at least this often, whether or not the
# bell rang (L-3: at most 1 s). Without PostgreSQL there is no bell: a short poll.
LIVE_RECHECK_SECONDS = env.float(
    "LIVE_RECHECK_SECONDS", default=1.0 if _db["ENGINE"].endswith("postgresql") else 0.25
)
if not 0 < LIVE_RECHECK_SECONDS <= 1.0:
    raise ImproperlyConfigured("LIVE_RECHECK_SECONDS must be above 0 and at most 1 (SPEC L-3).")

# --- Operator console (SPEC section 12) -------------------------------------------
# Served by the live process at /console/ (parley/console). template_partials
# renders a page's fragments alone, for the page's event stream.
INSTALLED_APPS += ["template_partials", "parley.console"]
# A stream sends a heartbeat after this long without a change (C-4: 15 s).
CONSOLE_HEARTBEAT_SECONDS = env.float("CONSOLE_HEARTBEAT_SECONDS", default=15.0)
# A page is updated at most this often, however many events arrive: a burst
# becomes one update (the live process reads the outbox once per batch).
CONSOLE_BATCH_SECONDS = env.float("CONSOLE_BATCH_SECONDS", default=0.5)
# A stream ends after this long and the browser reconnects at once (replaying
# from its last event): so a session that ended stops receiving within it.
CONSOLE_STREAM_MAX_SECONDS = env.float("CONSOLE_STREAM_MAX_SECONDS", default=300.0)
# True: the console's feed also wakes on the outbox's NOTIFY, within milliseconds
# of a commit; but then every outbox write notifies while a console is open,
# which serialises commits (README, "How it stays live"). False: it polls the
# outbox four times a second.
CONSOLE_WAKE_ON_NOTIFY = env.bool("CONSOLE_WAKE_ON_NOTIFY", default=False)
# The latest messages a thread shows (older ones: the read API, the admin).
CONSOLE_THREAD_MESSAGES = env.int("CONSOLE_THREAD_MESSAGES", default=500)
if not 0 < CONSOLE_BATCH_SECONDS <= 0.5:
    raise ImproperlyConfigured("CONSOLE_BATCH_SECONDS must be above 0 and at most 0.5 (C-4: 1 s).")

# --- Webhook intake -------------------------------------------------------------
# W-3: bodies above this get 413. DRF >= 3.17.2 applies it to JSON bodies too.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("WEBHOOK_MAX_BODY_BYTES", default=256 * 1024)
WEBHOOK_SECRET = env.str("WEBHOOK_SECRET", default="")
API_TOKEN = env.str("API_TOKEN", default="")

# --- Rate limiting --------------------------------------------------------------
# Optional per-source limit on POST /webhook/ (parley.core.throttling), in DRF's
# rate syntax: "100/s", "6000/min", "50000/hour", "1000000/day". Empty: no limit.
WEBHOOK_RATE_LIMIT = env.str("WEBHOOK_RATE_LIMIT", default="").strip()
if WEBHOOK_RATE_LIMIT and not re.fullmatch(
    r"[1-9][0-9]*/(s|sec|second|m|min|minute|h|hour|d|day)", WEBHOOK_RATE_LIMIT
):
    raise ImproperlyConfigured(
        f"WEBHOOK_RATE_LIMIT={WEBHOOK_RATE_LIMIT!r}: expected N/s, N/min, N/hour or N/day."
    )
# The counters live in Django's cache. With REDIS_URL every process shares them
# (one atomic INCR per request); without it each process counts on its own. The
# cache takes its own Redis database, REDIS_CACHE_DB, so that clearing it can
# never touch the broker's queues; its keys start with "parley:" as well.
_cache_redis_url = env.str("REDIS_URL", default="")
if _cache_redis_url:
    _cache_parts = urlsplit(_cache_redis_url)
    if _cache_parts.scheme in ("redis", "rediss"):
        _cache_db = env.int("REDIS_CACHE_DB", default=1)
        _cache_redis_url = urlunsplit(_cache_parts._replace(path=f"/{_cache_db}"))
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": _cache_redis_url,
            "KEY_PREFIX": "parley",
            # A slow Redis must not hold webhook requests: the throttle lets
            # requests through when the cache fails.
            "OPTIONS": {"socket_connect_timeout": 1.0, "socket_timeout": 1.0},
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "parley",
        }
    }

# --- Celery (README, "Why these Celery settings") ------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL or "filesystem://")
BROKER_IS_FILESYSTEM = CELERY_BROKER_URL.startswith("filesystem://")
# Longest a reserved-but-unacked message stays invisible before Redis hands it
# to another worker. It must exceed the task's hard time limit (check E001).
CELERY_VISIBILITY_TIMEOUT = env.int("CELERY_VISIBILITY_TIMEOUT", default=300)
if BROKER_IS_FILESYSTEM:
    _broker_dir = VAR_DIR / "broker"
    (_broker_dir / "processed").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {
        "data_folder_in": str(_broker_dir),
        "data_folder_out": str(_broker_dir),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
        # The worker polls the folder; kombu's default of 1 s would add up
        # to a second to every reply.
        "polling_interval": 0.1,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_VISIBILITY_TIMEOUT}
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_VISIBILITY_TIMEOUT}
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=10)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=15)
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Celery's Django fixup closes every database connection around each task
# unless this is set: a reconnect per task cost about 5 ms of wall time and let
# the worker fall behind under load. The task start hook still retires broken
# connections and those older than CONN_MAX_AGE.
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=1000)
CELERY_BEAT_SCHEDULE = {
    "sweep-due-work": {
        "task": "parley.conversations.tasks.sweep",
        "schedule": SWEEP_INTERVAL,
        # A tick that waited in the queue for a second is stale: a later one
        # does the same work.
        "options": {"expires": max(1.0, 4 * SWEEP_INTERVAL.total_seconds())},
    },
}

# --- REST framework and OpenAPI ------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
    "EXCEPTION_HANDLER": "parley.core.errors.problem_exception_handler",
    # Ignore an Accept header no renderer satisfies instead of answering 406.
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "parley.core.negotiation.LenientContentNegotiation",
    # Proxies in front of the app whose X-Forwarded-For entries are trusted (the
    # rate limit's client address); 0: REMOTE_ADDR, the header is ignored.
    "NUM_PROXIES": env.int("NUM_PROXIES", default=0),
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Parley",
    "DESCRIPTION": (
        "Conversation engine: webhook intake, out-of-order buffering, burst grouping "
        "and exactly-once replies. Every error is application/problem+json (RFC 9457)."
    ),
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "parley.webhooks.openapi.add_event_components",
    ],
}

# --- Static files, i18n ----------------------------------------------------------
STATIC_URL = "static/"
# Outside production, serve straight from the apps so that no collectstatic is needed.
WHITENOISE_USE_FINDERS = not PRODUCTION
STATIC_ROOT = BASE_DIR / "staticfiles" if PRODUCTION else VAR_DIR / "static"
if not PRODUCTION:
    STATIC_ROOT.mkdir(exist_ok=True)
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Security (S-1) -------------------------------------------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    # Probes and scrapers talk plain HTTP inside the cluster.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

# --- Logging ---------------------------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOG_FORMAT = env.str("LOG_FORMAT", default="json" if PRODUCTION else "console")
LOGGING_CONFIG = None  # configured by parley.core.logging, below
SENTRY_DSN = env.str("SENTRY_DSN", default="")

from parley.core.logging import configure_logging  # noqa: E402

configure_logging(level=LOG_LEVEL, fmt=LOG_FORMAT)

if SENTRY_DSN:
    import sentry_sdk

    sentry_sdk.init(
        dsn=SENTRY_DSN,
        environment=PARLEY_ENV,
        traces_sample_rate=env.float("SENTRY_TRACES_SAMPLE_RATE", default=0.0),
        send_default_pii=False,
    )
