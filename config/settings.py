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
    "parley.lifecycle",
    "parley.analytics",
    "parley.surveys",
    "parley.intake",
    "parley.streams",
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
# The live process's middleware: no WhiteNoise, which is sync-only (under ASGI
# one sync middleware makes Django run every request, waits included, on a
# thread of its own; config/asgi.py serves the static files instead), and
# Django's own middleware as their parley.live.middleware versions, whose
# hooks skip the hand-off to a thread (README, "Two server processes").
LIVE_MIDDLEWARE = [
    # Each of Django's has a class of the same name there (an import error says so).
    "parley.live.middleware." + m.rsplit(".", 1)[1] if m.startswith("django.") else m
    for m in MIDDLEWARE
    if not m.startswith("whitenoise.")
]
if LIVE_PROCESS:
    ROOT_URLCONF = "config.urls_live"
    MIDDLEWARE = LIVE_MIDDLEWARE

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

# --- Reply writers: fan-out, context, failures (SPEC G-7, G-8) -----------------
# Who calls the writer. "sweep": the sweeper claims, writes and records a
# batch at a time, one call after another (for writers that take
# microseconds, like the default). "tasks": reply runners, Celery tasks that
# claim due groups as they have room and call the writer concurrently: one
# call at a time per worker process for a plain function, up to
# REPLY_ASYNC_CONCURRENCY per process for an ``async def`` writer. "auto":
# "sweep" for the default writer, "tasks" for any other (README, "How a reply
# is exactly once, and on time").
REPLY_RUNNER = env.str("REPLY_RUNNER", default="auto")
# Longest a writer call may take; then it counts as a failure. It must stay
# below REPLY_LEASE_SECONDS, or a second runner could claim a group whose
# writer is still running (check parley.E004).
REPLY_WRITER_TIMEOUT = timedelta(seconds=env.float("REPLY_WRITER_TIMEOUT_SECONDS", default=10.0))
# Writer calls one worker process makes at a time for an async writer.
REPLY_ASYNC_CONCURRENCY = env.int("REPLY_ASYNC_CONCURRENCY", default=20)
# Earlier messages and replies of the conversation a writer gets as context.
REPLY_CONTEXT_MESSAGES = env.int("REPLY_CONTEXT_MESSAGES", default=20)
# A group whose writer failed (raised, timed out, or its runner died) this
# many times is FAILED until an operator retries it. Between attempts it
# waits REPLY_RETRY_BACKOFF_SECONDS, doubled each time (with jitter), at
# most REPLY_RETRY_BACKOFF_MAX_SECONDS.
REPLY_MAX_ATTEMPTS = env.int("REPLY_MAX_ATTEMPTS", default=5)
REPLY_RETRY_BACKOFF = timedelta(seconds=env.float("REPLY_RETRY_BACKOFF_SECONDS", default=2.0))
REPLY_RETRY_BACKOFF_MAX = timedelta(
    seconds=env.float("REPLY_RETRY_BACKOFF_MAX_SECONDS", default=60.0)
)
# A runner task takes new groups for this long, then finishes the calls it
# has started and ends (starting a successor if work remains), so other
# tasks get a turn on its worker process, and a stopping worker's runners end
# within its grace period (compose: 30 s; 10 + the writer's 10 s here).
REPLY_RUNNER_SECONDS = env.float("REPLY_RUNNER_SECONDS", default=10.0)
# Runner tasks a sweep starts at most (one per due group, or per
# REPLY_ASYNC_CONCURRENCY groups for an async writer). A runner that finds
# nothing to claim ends at once.
REPLY_RUNNER_BURST = env.int("REPLY_RUNNER_BURST", default=16)

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

# --- Queue intake (SPEC; README "Queue intake") --------------------------
# kombu URL, given to kombu unchanged: amqp://, sqs://, redis://, filesystem://.
INTAKE_BROKER_URL = env.str("INTAKE_BROKER_URL", default="filesystem://")
# kombu transport options as a JSON object (e.g. SQS region, predefined_queues).
INTAKE_TRANSPORT_OPTIONS: dict[str, object] = env.json("INTAKE_TRANSPORT_OPTIONS", default={})
if not isinstance(INTAKE_TRANSPORT_OPTIONS, dict):
    raise ImproperlyConfigured("INTAKE_TRANSPORT_OPTIONS must be a JSON object.")
# The exchange (RabbitMQ), FIFO queue (SQS) or list prefix (Redis); empty: the
# broker's default, parley.events (parley-events.fifo on SQS).
INTAKE_QUEUE = env.str("INTAKE_QUEUE", default="")
INTAKE_PARTITIONS = env.int("INTAKE_PARTITIONS", default=8)
INTAKE_MAX_DELIVERIES = env.int("INTAKE_MAX_DELIVERIES", default=5)
INTAKE_WORKERS = env.int("INTAKE_WORKERS", default=4)
INTAKE_BATCH_SIZE = env.int("INTAKE_BATCH_SIZE", default=50)
INTAKE_PREFETCH = env.int("INTAKE_PREFETCH", default=200)
# How long a worker waits for more events when a batch would be short.
INTAKE_BATCH_LINGER_SECONDS = env.float("INTAKE_BATCH_LINGER_SECONDS", default=0.01)
INTAKE_LEASE_SECONDS = env.float("INTAKE_LEASE_SECONDS", default=15.0)
INTAKE_SHUTDOWN_SECONDS = env.float("INTAKE_SHUTDOWN_SECONDS", default=20.0)
INTAKE_LAG_SECONDS = env.float("INTAKE_LAG_SECONDS", default=5.0)
INTAKE_INBOX_RETENTION_DAYS = env.float("INTAKE_INBOX_RETENTION_DAYS", default=30.0)
for _name in ("INTAKE_PARTITIONS", "INTAKE_MAX_DELIVERIES", "INTAKE_WORKERS", "INTAKE_BATCH_SIZE"):
    if globals()[_name] < 1:
        raise ImproperlyConfigured(f"{_name} must be at least 1.")

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
    "intake-inbox-prune": {
        "task": "parley.intake.tasks.inbox_prune",
        "schedule": timedelta(hours=1),
        "options": {"expires": 600},
    },
}

# --- Lifecycle, analytics and the object store (SPEC T-1 to T-6) -------------------
# The scheduler runs the lifecycle tick (idle and daily closes) and the archive
# this often, in UTC; T-2 asks for 30 s or less.
LIFECYCLE_INTERVAL = timedelta(seconds=env.float("LIFECYCLE_INTERVAL_SECONDS", default=10.0))
if not 0 < LIFECYCLE_INTERVAL.total_seconds() <= 30:
    raise ImproperlyConfigured("LIFECYCLE_INTERVAL_SECONDS must be above 0 and at most 30 (T-2).")
# Conversations a close or archive step takes at a time; a tick goes on until
# none is left or its time is up, and the next tick carries on.
LIFECYCLE_BATCH_SIZE = env.int("LIFECYCLE_BATCH_SIZE", default=100)
# T-4: how often the exporter writes new outbox events to the object store, and
# how many events at most go into one batch (one file per type and UTC day).
ANALYTICS_EXPORT_INTERVAL = timedelta(seconds=env.float("ANALYTICS_EXPORT_SECONDS", default=60.0))
ANALYTICS_EXPORT_BATCH_SIZE = env.int("ANALYTICS_EXPORT_BATCH_SIZE", default=10_000)
# T-6: empty for the folder var/objects/, file:///path for another folder, or
# s3://bucket/prefix for any S3-compatible bucket. boto3 reads the standard
# AWS_* variables itself (credentials, AWS_DEFAULT_REGION, AWS_ENDPOINT_URL).
OBJECT_STORE_URL = env.str("OBJECT_STORE_URL", default="")
_objects = urlsplit(OBJECT_STORE_URL)
if not OBJECT_STORE_URL:
    _objects_storage: dict[str, object] = {
        "BACKEND": "parley.core.objectstore.FolderStorage",
        "OPTIONS": {"location": str(VAR_DIR / "objects")},
    }
elif _objects.scheme == "file" and _objects.path.startswith("/") and not _objects.netloc:
    _objects_storage = {
        "BACKEND": "parley.core.objectstore.FolderStorage",
        "OPTIONS": {"location": _objects.path},
    }
elif _objects.scheme == "s3" and _objects.netloc:
    _objects_storage = {
        "BACKEND": "parley.core.objectstore.BucketStorage",
        "OPTIONS": {"bucket_name": _objects.netloc, "location": _objects.path.strip("/")},
    }
else:
    raise ImproperlyConfigured(
        f"OBJECT_STORE_URL={OBJECT_STORE_URL!r}: expected s3://bucket/prefix or file:///path."
    )
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "objects": _objects_storage,
}
CELERY_BEAT_SCHEDULE |= {
    # A tick that waited a whole interval in the queue is stale: the next does the same.
    "lifecycle-tick": {
        "task": "parley.lifecycle.tasks.tick",
        "schedule": LIFECYCLE_INTERVAL,
        "options": {"expires": LIFECYCLE_INTERVAL.total_seconds()},
    },
    "lifecycle-archive": {
        "task": "parley.lifecycle.tasks.archive",
        "schedule": LIFECYCLE_INTERVAL,
        "options": {"expires": LIFECYCLE_INTERVAL.total_seconds()},
    },
    "analytics-export": {
        "task": "parley.analytics.tasks.export",
        "schedule": ANALYTICS_EXPORT_INTERVAL,
        "options": {"expires": ANALYTICS_EXPORT_INTERVAL.total_seconds()},
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
    # Two "status" fields with different choices: each enum gets its own name.
    "ENUM_NAME_OVERRIDES": {
        "ConversationStatusEnum": "parley.conversations.models.Conversation.Status",
        "AcceptedStatusEnum": ["queued", "buffered", "stored", "recorded"],
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "parley.webhooks.openapi.add_event_components",
    ],
}

# --- Streams for collectors (SPEC section 8) -------------------------------------
# Long polls of the live process: the Pix API (seed 004) and reply streams.
# A GET answers 204 once this much has passed since it arrived (X-4: at most 8).
PIX_POLL_SECONDS = env.float("PIX_POLL_SECONDS", default=8.0)
# Open streams an ISPB may hold at once; a start past it gets 429.
PIX_MAX_STREAMS_PER_ISPB = env.int("PIX_MAX_STREAMS_PER_ISPB", default=6)
# A stream with no request for this long expires and frees its slot.
PIX_STREAM_IDLE_SECONDS = env.float("PIX_STREAM_IDLE_SECONDS", default=60.0)
# The same three rules for reply streams, per tenant.
REPLY_STREAM_POLL_SECONDS = env.float("REPLY_STREAM_POLL_SECONDS", default=8.0)
REPLY_STREAM_MAX_PER_TENANT = env.int("REPLY_STREAM_MAX_PER_TENANT", default=6)
REPLY_STREAM_IDLE_SECONDS = env.float("REPLY_STREAM_IDLE_SECONDS", default=60.0)
for _name in ("PIX_POLL_SECONDS", "REPLY_STREAM_POLL_SECONDS"):
    if not 0 < globals()[_name] <= 8:
        raise ImproperlyConfigured(f"{_name} must be above 0 and at most 8 (SPEC X-4).")
for _name in ("PIX_MAX_STREAMS_PER_ISPB", "REPLY_STREAM_MAX_PER_TENANT"):
    if not 1 <= globals()[_name] <= 1000:
        raise ImproperlyConfigured(f"{_name} must be between 1 and 1000.")
for _name in ("PIX_STREAM_IDLE_SECONDS", "REPLY_STREAM_IDLE_SECONDS"):
    if globals()[_name] <= 0:
        raise ImproperlyConfigured(f"{_name} must be above 0.")
# How often the scheduler expires idle streams (their stream.closed events) and
# prunes what the retention below lets go.
STREAMS_SWEEP_INTERVAL = timedelta(seconds=env.float("STREAMS_SWEEP_SECONDS", default=5.0))
# Closed streams (with their ids) and delivered reply items are kept this long;
# undelivered reply items too, so a platform that never collects does not grow
# the table forever. Pix messages are the data: never pruned.
STREAMS_RETENTION = timedelta(hours=env.float("STREAMS_RETENTION_HOURS", default=24.0))
CELERY_BEAT_SCHEDULE["streams-sweep"] = {
    "task": "parley.streams.tasks.sweep",
    "schedule": STREAMS_SWEEP_INTERVAL,
    "options": {"expires": max(1.0, STREAMS_SWEEP_INTERVAL.total_seconds())},
}
# The schema at /api/schema/ documents the live process's endpoints too, though
# the web process does not route them (config/urls_schema.py).
SPECTACULAR_SETTINGS["DEFAULT_GENERATOR_CLASS"] = "config.schema.SchemaGenerator"
SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"] = [
    *SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"],  # type: ignore[misc]
    "parley.streams.openapi.bound_batches",
]

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

# --- Assistance routing (SPEC section 9) -------------------------------------------
INSTALLED_APPS += ["parley.assistance"]
# Attempts and the wait before each: comma-separated seconds, the first
# for the first attempt; its length is the number of attempts.
ASSISTANCE_RETRY_SCHEDULE = [
    float(s)
    for s in env.list(
        "ASSISTANCE_RETRY_SCHEDULE", default=["0", "5", "30", "120", "600", "1800", "3600", "7200"]
    )
]
if not ASSISTANCE_RETRY_SCHEDULE or any(s < 0 for s in ASSISTANCE_RETRY_SCHEDULE):
    raise ImproperlyConfigured(
        "ASSISTANCE_RETRY_SCHEDULE needs one or more seconds, none negative."
    )
# Each wait varies by up to this share either way, so that retries spread out.
ASSISTANCE_RETRY_JITTER = env.float("ASSISTANCE_RETRY_JITTER", default=0.2)
if not 0 <= ASSISTANCE_RETRY_JITTER < 1:
    raise ImproperlyConfigured("ASSISTANCE_RETRY_JITTER must be at least 0 and below 1.")
# Seconds an outgoing call may take; longer counts as retryable.
ASSISTANCE_TIMEOUT_SECONDS = env.float("ASSISTANCE_TIMEOUT_SECONDS", default=10.0)
# A runner owns a delivery this long; the sweep takes it again after (a killed
# worker's send). It must exceed the delivery task's hard time limit (a check).
ASSISTANCE_LEASE = timedelta(seconds=env.float("ASSISTANCE_LEASE_SECONDS", default=60.0))
# How long a new request waits for its task before the sweep takes it instead.
ASSISTANCE_PENDING_GRACE = timedelta(
    seconds=env.float("ASSISTANCE_PENDING_GRACE_SECONDS", default=2.0)
)
ASSISTANCE_SWEEP_INTERVAL = timedelta(
    seconds=env.float("ASSISTANCE_SWEEP_INTERVAL_SECONDS", default=0.5)
)
ASSISTANCE_SWEEP_BATCH_SIZE = env.int("ASSISTANCE_SWEEP_BATCH_SIZE", default=200)
# Sends a worker process makes at once (threads): also the size of a task's batch.
ASSISTANCE_SEND_CONCURRENCY = max(1, env.int("ASSISTANCE_SEND_CONCURRENCY", default=16))
ASSISTANCE_IDEMPOTENCY_TTL = timedelta(
    hours=env.float("ASSISTANCE_IDEMPOTENCY_HOURS", default=24.0)
)
# Defaults of the seeded channels while their own config is empty.
ASSISTANCE_SLACK_WEBHOOK_URL = env.str("ASSISTANCE_SLACK_WEBHOOK_URL", default="")
# Fernet keys for channel configs at rest; empty: one derived from SECRET_KEY.
ASSISTANCE_CONFIG_KEYS = env.list("ASSISTANCE_CONFIG_KEYS", default=[])
# every OUTBOUND reply pushed to this URL, signed with the secret.
REPLY_WEBHOOK_URL = env.str("REPLY_WEBHOOK_URL", default="")
REPLY_WEBHOOK_SECRET = env.str("REPLY_WEBHOOK_SECRET", default="")
# Django's mail: SMTP from EMAIL_URL (smtp://user:pass@host:587, submission://
# for STARTTLS, smtps:// for TLS); without it, files under var/mail/.
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="parley@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
if env.str("EMAIL_URL", default=""):
    vars().update(env.email_url("EMAIL_URL"))
    _assistance_email_to_default: list[str] = []
else:
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = str(VAR_DIR / "mail")
    _assistance_email_to_default = ["assistance@localhost"]
EMAIL_TIMEOUT = ASSISTANCE_TIMEOUT_SECONDS
ASSISTANCE_EMAIL_TO = env.list("ASSISTANCE_EMAIL_TO", default=_assistance_email_to_default)
CELERY_BEAT_SCHEDULE["assistance-sweep"] = {
    "task": "parley.assistance.tasks.sweep",
    "schedule": ASSISTANCE_SWEEP_INTERVAL,
    "options": {"expires": max(1.0, 4 * ASSISTANCE_SWEEP_INTERVAL.total_seconds())},
}
# The request's statuses get their own name in the OpenAPI schema.
SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"] = {
    **SPECTACULAR_SETTINGS.get("ENUM_NAME_OVERRIDES", {}),  # type: ignore[dict-item]
    "AssistanceStatusEnum": "parley.assistance.models.Delivery.Status",
}
