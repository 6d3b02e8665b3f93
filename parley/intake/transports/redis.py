"""Redis: ``INTAKE_PARTITIONS`` lists ``parley.events.N``, one partition each.

The partition of a conversation key is ``crc32(key) % INTAKE_PARTITIONS``
(:func:`parley.intake.transports.base.partition_of`). Redis cannot give a
list a single consumer, so each partition is consumed under a lease
(``parley.intake.leases``): one consumer at a time, failing over once the
lease of a consumer that died runs out. kombu keeps a delivered message in
its ``unacked`` hash until the ack; the lease outlives kombu's
``visibility_timeout``, so a dead consumer's unacknowledged messages are back
at the head of their list before anyone else reads it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.conf import settings
from kombu import Queue
from kombu.message import Message
from kombu.transport import virtual

from parley.intake.transports import register
from parley.intake.transports.base import Transport


@register
class RedisTransport(Transport):
    source = "redis"
    schemes = ("redis", "rediss")
    leased = True

    def __init__(self, url: str, **options: Any) -> None:
        super().__init__(url, **options)
        # Shorter than the lease, so that a dead consumer's messages become
        # visible again before its partitions can be claimed (see above).
        self.transport_options.setdefault(
            "visibility_timeout", max(1.0, settings.INTAKE_LEASE_SECONDS / 3)
        )

    def queues(self) -> list[Queue]:
        return [self.partition_queue(index) for index in range(self.partitions)]

    def lag(self, channel: Any, queues: Sequence[Queue]) -> dict[str, int]:
        with channel.conn_or_acquire() as client:
            return {queue.name: int(client.llen(queue.name)) for queue in queues}

    def ack_many(self, messages: Sequence[Message]) -> None:
        """One round trip for a whole batch of acks (kombu sends one per message).

        kombu's Redis ack removes the delivery from its ``unacked`` hash and
        index, then forgets it; here every removal goes in one pipeline first.
        """
        if len(messages) < 2:
            super().ack_many(messages)
            return
        channel = messages[0].channel
        assert channel is not None
        qos = channel.qos
        tags = [str(message.delivery_tag) for message in messages]
        with qos.pipe_or_acquire() as pipe:
            for tag in tags:
                qos._remove_from_indices(tag, pipe)
            pipe.execute()
        for message, tag in zip(messages, tags, strict=True):
            virtual.QoS.ack(qos, tag)
            # What Message.ack sets: the message knows it was acknowledged.
            message._state = "ACK"  # type: ignore[attr-defined]

    def restore_delay(self) -> float:
        return float(self.transport_options["visibility_timeout"])

    def before_claim(self, channel: Any) -> None:
        """Put messages whose consumer died (visibility timeout passed) back at their heads."""
        channel.qos.restore_visible(num=1000, interval=1)
