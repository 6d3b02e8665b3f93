"""What every broker transport provides (``parley.intake.transports``)."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any, ClassVar

from django.conf import settings
from kombu import Connection, Exchange, Producer, Queue
from kombu.message import Message


def partition_of(key: str, partitions: int) -> int:
    """The partition of a conversation key on brokers Parley partitions itself.

    CRC-32 of the key's UTF-8 bytes, modulo the partition count: any language
    computes the same (zlib, java.util.zip.CRC32, Go's hash/crc32 IEEE).
    """
    return zlib.crc32(key.encode()) % partitions


class Transport:
    """One broker kind. Subclasses set ``source`` and ``schemes`` and override what differs."""

    source: ClassVar[str]
    schemes: ClassVar[tuple[str, ...]]
    # True where the broker cannot give a queue a single consumer itself: the
    # consumer then takes a lease per partition (parley.intake.leases).
    leased: ClassVar[bool] = False
    default_queue: ClassVar[str] = "parley.events"
    # Options passed to kombu when INTAKE_TRANSPORT_OPTIONS does not set them.
    default_options: ClassVar[dict[str, Any]] = {}

    def __init__(
        self,
        url: str,
        *,
        queue: str | None = None,
        partitions: int | None = None,
        transport_options: dict[str, Any] | None = None,
    ) -> None:
        self.url = url
        self.name = queue or settings.INTAKE_QUEUE or self.default_queue
        self.partitions = partitions or settings.INTAKE_PARTITIONS
        given = (
            settings.INTAKE_TRANSPORT_OPTIONS if transport_options is None else transport_options
        )
        self.transport_options = {**self.default_options, **given}

    def connection(self, **extra_options: Any) -> Connection:
        """A kombu connection on the URL, unchanged, with the transport options."""
        return Connection(self.url, transport_options={**self.transport_options, **extra_options})

    # --- consuming ------------------------------------------------------------

    def queues(self) -> list[Queue]:
        """Every queue the consumer reads, one per partition."""
        raise NotImplementedError

    def declare(self, channel: Any) -> None:
        """Declare the exchange, queues and bindings (idempotent)."""
        for queue in self.queues():
            queue(channel).declare()

    def deliveries(self, message: Message) -> int:
        """How many times the broker delivered this message, this time included (>= 1)."""
        return 2 if message.delivery_info.get("redelivered") else 1

    def lag(self, channel: Any, queues: Sequence[Queue]) -> dict[str, int]:
        """Messages waiting per queue, where the broker says; {} where it cannot."""
        return {}

    def ack_many(self, messages: Sequence[Message]) -> None:
        """Acknowledge messages of one channel (each raises alone if its channel is gone)."""
        for message in messages:
            message.ack()

    def before_claim(self, channel: Any) -> None:
        """Leased transports: make a dead reader's unacknowledged messages readable again."""

    def restore_delay(self) -> float:
        """Seconds after a lost connection until its unacknowledged messages are readable again."""
        return 0.0

    # --- publishing -----------------------------------------------------------

    def publish(self, producer: Producer, body: bytes, key: str) -> None:
        queue = self.queues()[partition_of(key, self.partitions)]
        producer.publish(
            body,
            exchange=queue.exchange,
            routing_key=queue.routing_key,
            content_type="application/json",
            content_encoding="binary",
            delivery_mode=2,
            declare=[queue],
            retry=True,
        )

    def queue_of(self, key: str) -> str:
        """The name of the queue a key's events go to."""
        queues = self.queues()
        return (
            queues[0].name
            if len(queues) == 1
            else f"{self.name}.{partition_of(key, self.partitions)}"
        )

    def partition_queue(self, index: int) -> Queue:
        exchange = Exchange(self.name, type="direct", durable=True)
        name = f"{self.name}.{index}"
        return Queue(name, exchange=exchange, routing_key=name, durable=True)
