"""``manage.py consume`` whose acknowledgements wait ``ACK_DELAY`` seconds after each commit.

The end-to-end fault tests run it to have a window, after the transaction has
committed and before the broker hears of it, in which to kill the process.
Everything else is the real consumer.
"""

from __future__ import annotations

import os
import time
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()

from django.core.management import call_command  # noqa: E402

from parley.intake.consumer import EventConsumer  # noqa: E402

_settled = EventConsumer._settled


def _settled_later(self: EventConsumer, batch: list[Any]) -> None:
    print("committed", len(batch), flush=True)
    time.sleep(float(os.environ["ACK_DELAY"]))
    _settled(self, batch)


EventConsumer._settled = _settled_later  # type: ignore[method-assign]
call_command("consume")
