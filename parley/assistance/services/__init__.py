"""Every write of the assistance app, one module per part.

* ``requests``: a request is stored (with its idempotency key) and published
  after commit; an operator retries a FAILED one.
* ``delivery``: attempts: claim (one or a batch), send outside any transaction.
* ``record``: an attempt's result, the delivery's next state and its event.
* ``sweep``: what is due and not leased goes to a worker; pushed replies come
  from the outbox; old idempotency keys go.
* ``catalog``: channels and topics, validated against the kinds' schemas.
"""

from parley.assistance.services.catalog import channel_save, topic_save
from parley.assistance.services.delivery import (
    AttemptReport,
    deliveries_pending_run,
    deliveries_run,
    delivery_attempt,
)
from parley.assistance.services.requests import Submitted, delivery_retry, request_submit
from parley.assistance.services.sweep import SweepReport, assistance_sweep, reply_push_pump

__all__ = [
    "AttemptReport",
    "Submitted",
    "SweepReport",
    "assistance_sweep",
    "channel_save",
    "deliveries_pending_run",
    "deliveries_run",
    "delivery_attempt",
    "delivery_retry",
    "reply_push_pump",
    "request_submit",
    "topic_save",
]
