"""kombu's filesystem transport: the embedded default (``filesystem://``).

Messages are files in a folder (``PARLEY_VAR_DIR/intake`` unless the
transport options say otherwise); partitions as for Redis, under leases. It
needs no server, which is its whole point: ``make run`` consumes a
``publish_events`` file with nothing installed. kombu deletes a message's
file when it reads it and keeps the unacknowledged message in memory, so a
consumer killed with SIGKILL loses what it had read and not yet applied; a
clean stop puts it back. Production uses RabbitMQ, SQS or Redis.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from django.conf import settings
from kombu import Queue

from parley.intake.transports import register
from parley.intake.transports.base import Transport


@register
class FilesystemTransport(Transport):
    source = "filesystem"
    schemes = ("filesystem",)
    leased = True

    def __init__(self, url: str, **options: Any) -> None:
        super().__init__(url, **options)
        folder = Path(settings.VAR_DIR) / "intake"
        self.transport_options.setdefault("data_folder_in", str(folder / "messages"))
        self.transport_options.setdefault("data_folder_out", str(folder / "messages"))
        self.transport_options.setdefault("control_folder", str(folder / "control"))
        self.transport_options.setdefault("processed_folder", str(folder / "processed"))
        self.transport_options.setdefault("store_processed", False)
        self.transport_options.setdefault("polling_interval", 0.05)
        for option in ("data_folder_in", "data_folder_out", "control_folder", "processed_folder"):
            Path(self.transport_options[option]).mkdir(parents=True, exist_ok=True)

    def queues(self) -> list[Queue]:
        return [self.partition_queue(index) for index in range(self.partitions)]

    def lag(self, channel: Any, queues: Sequence[Queue]) -> dict[str, int]:
        folder = Path(self.transport_options["data_folder_in"])
        names = [entry.name for entry in folder.iterdir()]
        return {
            queue.name: sum(1 for name in names if name.endswith(f".{queue.name}.msg"))
            for queue in queues
        }

    def before_claim(self, channel: Any) -> None:
        """Nothing to restore: kombu keeps unacknowledged messages in the reader's memory."""
