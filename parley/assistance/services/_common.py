"""What the service modules share: the due-work description, publishing after commit."""

from __future__ import annotations

from uuid import UUID

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


def publish_after_commit(delivery_id: UUID) -> None:
    """Attempt ``delivery_id`` in a task once the transaction commits.

    A broker that is down must not fail a request whose row is committed: the
    error is logged, and the sweep takes the request when its grace ends.
    """
    from parley.assistance.tasks import deliver

    def publish() -> None:
        try:
            deliver.apply_async((str(delivery_id),), retry=False)
        except Exception:
            log.exception("assistance_publish_failed", request_id=str(delivery_id))

    transaction.on_commit(publish)
