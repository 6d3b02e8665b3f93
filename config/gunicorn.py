"""gunicorn settings (README, "Web server"): sync workers, measured steadiest p99."""

from __future__ import annotations

import multiprocessing
import os

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"  # noqa: S104
worker_class = "sync"
workers = int(os.environ.get("WEB_CONCURRENCY", 2 * multiprocessing.cpu_count()))
# Recycle workers now and then so that a slow leak cannot grow without bound.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", 20000))
max_requests_jitter = max_requests // 10
# Load the application once, in the master: a recycled worker is a fork, ready
# at once. Without it each new worker imported Django and the app itself
# (0.6 s of CPU here), and workers that recycled together under load stalled
# requests for about a second (make bench, half-load p99 1,022 ms).
preload_app = True
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 30))
graceful_timeout = 20
# Reject oversized request lines and headers before Django sees them.
limit_request_line = 8190
limit_request_fields = 100
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
errorlog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
