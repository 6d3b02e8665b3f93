"""Liveness and readiness probes (SPEC O-3).

``/healthz`` answers while the process can serve a request and touches
nothing else: it is also the yardstick the benchmark divides by. ``/readyz``
asks the database and the broker, with short timeouts, and says which failed.
"""

from __future__ import annotations

from pathlib import Path

import structlog
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from kombu import Connection

from parley.core.errors import problem_response

log = structlog.get_logger(__name__)

PROBE_TIMEOUT_SECONDS = 2.0


def healthz(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b'{"status":"ok"}', content_type="application/json")


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _check_broker() -> None:
    url: str = settings.CELERY_BROKER_URL
    if settings.BROKER_IS_FILESYSTEM:
        folder = Path(str(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"]))
        if not folder.is_dir():
            raise OSError(f"broker folder {folder.name!r} is missing")
        return
    if url.startswith(("redis://", "rediss://")):
        import redis

        client = redis.Redis.from_url(
            url,
            socket_timeout=PROBE_TIMEOUT_SECONDS,
            socket_connect_timeout=PROBE_TIMEOUT_SECONDS,
        )
        try:
            client.ping()
        finally:
            client.close()
        return
    with Connection(url, connect_timeout=PROBE_TIMEOUT_SECONDS) as conn:
        conn.ensure_connection(max_retries=1)


def readyz(request: HttpRequest) -> HttpResponse:
    failures: dict[str, list[str]] = {}
    for name, check in (("database", _check_database), ("broker", _check_broker)):
        try:
            check()
        except Exception as exc:  # any failure means "not ready"; the reason is reported
            log.warning("readiness_check_failed", component=name, error=str(exc))
            failures[name] = [f"{type(exc).__name__}: {exc}"]
    if failures:
        return problem_response(
            status=503,
            code="not_ready",
            title="Service not ready",
            detail="Unreachable: " + ", ".join(failures) + ".",
            errors=failures,
        )
    return JsonResponse({"status": "ready", "database": "ok", "broker": "ok"})


def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition of every process sharing PROMETHEUS_MULTIPROC_DIR."""
    from parley.core.metrics import render

    payload, content_type = render()
    return HttpResponse(payload, content_type=content_type)
