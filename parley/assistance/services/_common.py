"""What the service modules share: the due-work description, publishing after commit."""

from __future__ import annotations

import os
from typing import Any

import structlog
from django.conf import settings
from django.db import connection, transaction

from parley.assistance.models import Delivery
from parley.core.duework import DueWork

log = structlog.get_logger(__name__)

DUE = DueWork(
    model=Delivery,
    due_field="next_attempt_at",
    token_field="lease_token",  # noqa: S106  (a column name)
    status_field="status",
    live_statuses=Delivery.LIVE,
)


def database_functions() -> bool:
    """Whether the hot paths run as single PostgreSQL statements (False: the portable steps)."""
    return connection.vendor == "postgresql" and bool(settings.DATABASE_FUNCTIONS)


# The key that says "a delivery task is already on its way" (kick_after_commit).
KICK_KEY = "parley:assistance:kick"
# A kick whose task was lost stops muting new ones after this.
KICK_TTL_SECONDS = 1


def kick_after_commit() -> None:
    """Once the transaction commits, make sure a task delivers what is pending.

    A burst of requests needs one task, not one each: a request publishes
    one only when none is on its way. The task deletes the key before it
    claims, so a request committed after that publishes the next one, and
    one committed before it is claimed by it. The key lives in the shared
    cache (Redis); without one (each process its own cache) every request
    publishes. A task that is lost mutes new ones for ``KICK_TTL_SECONDS``
    at most, and the sweep takes what it left when the grace ends.
    """
    transaction.on_commit(kick)


def kick() -> None:
    """Publish the delivery task, unless one is on its way; never raise."""
    from parley.assistance.tasks import deliver_pending

    client = _redis()
    try:
        if client is not None and not client.set(KICK_KEY, 1, nx=True, ex=KICK_TTL_SECONDS):
            return
    except Exception:
        log.warning("assistance_kick_cache_failed")  # publish anyway
    try:
        deliver_pending.apply_async(retry=False)
    except Exception:
        log.exception("assistance_publish_failed")


def kick_received() -> None:
    """The delivery task has started: the next request publishes a task again."""
    client = _redis()
    if client is not None:
        try:
            client.delete(KICK_KEY)
        except Exception:
            log.warning("assistance_kick_cache_failed")


_clients: dict[int, Any] = {}


def _redis() -> Any:
    """This process's client of the cache's Redis (one SET NX a request), or None without one.

    The cache's own client is made anew on every call; this one is made once.
    """
    cache = settings.CACHES["default"]
    if "redis" not in str(cache["BACKEND"]).lower():
        return None
    pid = os.getpid()
    if pid not in _clients:
        import redis

        _clients.clear()
        _clients[pid] = redis.Redis.from_url(
            cache["LOCATION"], socket_connect_timeout=1.0, socket_timeout=1.0
        )
    return _clients[pid]
