"""Amazon SQS: one FIFO queue ``INTAKE_QUEUE`` (``parley-events.fifo``).

``MessageGroupId`` is the conversation key: SQS hands out the messages of a
group one at a time, in order, whatever the number of consumers, and the
groups of different conversations in parallel (Q-5). Deduplication is the
inbox's (Q-6): ``MessageDeduplicationId`` is never relied on (it lasts five
minutes). Credentials and endpoint come from the standard ``AWS_*``
variables; kombu's ``predefined_queues``, region and the rest from
``INTAKE_TRANSPORT_OPTIONS``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any

from kombu import Exchange, Producer, Queue
from kombu.message import Message

from parley.intake.transports import register
from parley.intake.transports.base import Transport

# What SQS takes as a MessageGroupId: 1 to 128 ASCII letters, digits and punctuation.
_GROUP_ID = re.compile(r"^[A-Za-z0-9!-/:-@\[-`{-~]{1,128}$")


def group_id(key: str) -> str:
    """The key itself, or ``sha256:<hex>`` of it when SQS would refuse it (too long, non-ASCII)."""
    if _GROUP_ID.match(key):
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


@register
class SqsTransport(Transport):
    source = "sqs"
    schemes = ("sqs",)
    default_queue = "parley-events.fifo"
    default_options = {
        # Long polls of 1 s and no pause between them: an event waits at
        # most about a second (kombu's defaults add up to 11 s).
        "wait_time_seconds": 1,
        "polling_interval": 0,
        # An unacknowledged message comes back after this; it must exceed
        # the time a batch can take (kombu's default is 30 minutes).
        "visibility_timeout": 60,
    }

    def queues(self) -> list[Queue]:
        exchange = Exchange(self.name, type="direct", durable=True)
        return [Queue(self.name, exchange=exchange, routing_key=self.name, durable=True)]

    def deliveries(self, message: Message) -> int:
        sqs_message = message.delivery_info.get("sqs_message") or {}
        count = (sqs_message.get("Attributes") or {}).get("ApproximateReceiveCount")
        if isinstance(count, str | int) and str(count).isdigit():
            return max(1, int(count))
        return super().deliveries(message)

    def lag(self, channel: Any, queues: Sequence[Queue]) -> dict[str, int]:
        depths = {}
        for queue in queues:
            url = channel._new_queue(queue.name)
            attributes = channel.sqs(queue=queue.name).get_queue_attributes(
                QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
            )["Attributes"]
            depths[queue.name] = int(attributes["ApproximateNumberOfMessages"])
        return depths

    def publish(self, producer: Producer, body: bytes, key: str) -> None:
        queue = self.queues()[0]
        producer.publish(
            body,
            exchange=queue.exchange,
            routing_key=queue.routing_key,
            content_type="application/json",
            content_encoding="binary",
            declare=[queue],
            retry=True,
            MessageGroupId=group_id(key),
        )
