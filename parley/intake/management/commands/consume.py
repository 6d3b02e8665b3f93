"""``manage.py consume``: the queue consumer (``make consume``; compose service ``consumer``)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from parley.intake.consumer import EventConsumer
from parley.intake.transports import for_url


class Command(BaseCommand):
    help = "Consume webhook events from INTAKE_BROKER_URL (RabbitMQ, SQS, Redis or filesystem)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", help="Broker URL (default: INTAKE_BROKER_URL).")
        parser.add_argument("--workers", type=int, help="Worker threads (INTAKE_WORKERS).")

    def handle(self, *args: Any, **options: Any) -> None:
        transport = for_url(options["url"] or settings.INTAKE_BROKER_URL)
        consumer = EventConsumer(transport, workers=options["workers"])
        consumer.install_signal_handlers()
        consumer.run()
