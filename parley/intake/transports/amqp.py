"""RabbitMQ (AMQP 0-9-1).

Producers publish to the durable exchange ``INTAKE_QUEUE`` (``parley.events``)
of type ``x-consistent-hash`` with the conversation key as routing key; the
exchange hashes the key onto ``INTAKE_PARTITIONS`` queues ``parley.events.N``,
each bound with weight 1. Every queue is a durable quorum queue with
``x-single-active-consumer``: the broker delivers a queue to one consumer at
a time, so a conversation's events are applied in publish order (Q-5). On
their own, single-active-consumer queues would all go to the first consumer
that subscribes; so consumers share the queues with the same leases as on
Redis (``parley.intake.leases``) and subscribe to the ones they hold, and the
broker's rule stays underneath as the guarantee. A consumer's unacknowledged
messages go back to the head of their queue when its connection closes.
Quorum queues count redeliveries (``x-delivery-count``) and keep messages
across a broker restart.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kombu import Exchange, Producer, Queue
from kombu.message import Message

from parley.intake.transports import register
from parley.intake.transports.base import Transport

QUEUE_ARGUMENTS = {"x-queue-type": "quorum", "x-single-active-consumer": True}


@register
class AmqpTransport(Transport):
    source = "amqp"
    schemes = ("amqp", "amqps", "pyamqp")
    leased = True
    # Publisher confirms: publish_events returns only once the broker has the messages.
    default_options = {"confirm_publish": True}

    def exchange(self) -> Exchange:
        return Exchange(self.name, type="x-consistent-hash", durable=True)

    def queues(self) -> list[Queue]:
        exchange = self.exchange()
        return [
            Queue(
                f"{self.name}.{index}",
                exchange=exchange,
                routing_key="1",  # the binding's weight in the hash ring
                durable=True,
                queue_arguments=QUEUE_ARGUMENTS,
            )
            for index in range(self.partitions)
        ]

    def deliveries(self, message: Message) -> int:
        count = (message.headers or {}).get("x-delivery-count")
        if isinstance(count, int):
            return count + 1
        return super().deliveries(message)

    def lag(self, channel: Any, queues: Sequence[Queue]) -> dict[str, int]:
        depths = {}
        for queue in queues:
            declared = channel.queue_declare(queue=queue.name, passive=True)
            depths[queue.name] = int(declared.message_count)
        return depths

    def queue_of(self, key: str) -> str:
        return self.name  # the exchange picks the queue

    def publish(self, producer: Producer, body: bytes, key: str) -> None:
        # The queues and bindings too (once per connection): an x-consistent-hash
        # exchange without bindings drops what it is given.
        producer.publish(
            body,
            exchange=self.exchange(),
            routing_key=key,
            content_type="application/json",
            content_encoding="binary",
            delivery_mode=2,
            declare=self.queues(),
            retry=True,
        )
