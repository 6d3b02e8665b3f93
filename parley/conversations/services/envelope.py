"""The seed's envelope (Q-2): messages addressed by (tenant, channel, contact), not by id.

``message.received`` is an INBOUND message, grouped and answered like a
NEW_MESSAGE; ``message.sent`` is an OUTBOUND message written by someone else
(an agent): stored, never answered, never a reply. Both go to the OPEN
conversation of their key, which is created when there is none.

At most one OPEN conversation per key: the partial unique index
``conversation_one_open_per_contact`` holds it, and the creation is an
``INSERT ... ON CONFLICT DO NOTHING`` on that index, so two processes that
both find no OPEN conversation create one between them: the loser's insert
does nothing (after waiting for the winner's commit, on PostgreSQL) and its
next look finds the winner's row.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from uuid import UUID

import structlog
from django.db import IntegrityError, transaction
from django.utils import timezone
from structlog.contextvars import bind_contextvars

from parley.conversations import events
from parley.conversations.models import Conversation, Message
from parley.conversations.services._common import (
    CONVERSATION_TABLE,
    conversation_field,
    select_rows,
)
from parley.conversations.services.intake import _append_inbound
from parley.core import sql
from parley.core.errors import ConversationNotFound, MessageIdConflict
from parley.tenants.services import tenant_ensure

log = structlog.get_logger(__name__)

# How many times a writer looks again after losing the creation race to a
# conversation that closed before it could see it. Twice is already a freak.
_KEY_ATTEMPTS = 5


@dataclass(frozen=True)
class Stored:
    """What an envelope message came to (the 202 body of Q-2)."""

    id: UUID
    conversation_id: UUID
    status: Literal["queued", "stored"]
    replay: bool = False


def message_uuid(*, tenant_id: UUID, producer_id: str) -> tuple[UUID, str | None]:
    """The message's UUID and its ``external_id``: a UUID stays, anything else maps stably.

    ``uuid5(tenant_id, id)``: the same producer id in the same tenant is the
    same message, so a redelivery is a replay, not a second message (Q-2).
    """
    try:
        return UUID(producer_id), None
    except ValueError:
        return uuid.uuid5(tenant_id, producer_id), producer_id


_LOCK_OPEN_OF_KEY = f"""
    UPDATE {CONVERSATION_TABLE} SET updated_at = %s
    WHERE tenant_id = %s AND channel_uuid = %s AND contact_urn = %s AND status = 'OPEN'
    RETURNING id
"""  # noqa: S608  (table name from the model)
# The conflict target names the partial unique index by its columns and its
# predicate, spelled as Django created it (SQLite matches it literally).
_CREATE_FOR_KEY = f"""
    INSERT INTO {CONVERSATION_TABLE}
        (id, status, tenant_id, channel_uuid, contact_urn, created_at, updated_at)
    VALUES (%s, 'OPEN', %s, %s, %s, %s, %s)
    ON CONFLICT (tenant_id, channel_uuid, contact_urn)
        WHERE ("channel_uuid" IS NOT NULL AND "status" = 'OPEN')
    DO NOTHING
"""  # noqa: S608


def conversation_for_contact(
    *, tenant_id: UUID, channel_uuid: str, contact_urn: str, now: datetime
) -> UUID:
    """The OPEN conversation of the key, locked and touched; created when there is none.

    1. Lock the OPEN conversation of the key (the UPDATE takes the row lock
       and moves ``updated_at``, R-1).
    2. None: insert one, doing nothing on a conflict with the partial unique
       index. Inserted: it is ours (write ``conversation.opened``).
    3. Not inserted: another writer created it meanwhile; look again.
    Caller runs this in a transaction, with the tenant ensured.
    """
    key = [
        (conversation_field("tenant"), tenant_id),
        (conversation_field("channel_uuid"), channel_uuid),
        (conversation_field("contact_urn"), contact_urn),
    ]
    for _ in range(_KEY_ATTEMPTS):
        rows = select_rows(
            _LOCK_OPEN_OF_KEY,
            [(conversation_field("updated_at"), now), *key],
            [conversation_field("id")],
        )
        if rows:
            return UUID(str(rows[0][0]))
        conversation_id = uuid.uuid4()
        inserted = sql.execute(
            _CREATE_FOR_KEY,
            [
                (conversation_field("id"), conversation_id),
                *key,
                (conversation_field("created_at"), now),
                (conversation_field("updated_at"), now),
            ],
        )
        if inserted:
            events.conversation_opened(
                conversation_id=conversation_id,
                tenant_id=tenant_id,
                occurred_at=now,
                channel_uuid=channel_uuid,
                contact_urn=contact_urn,
            )
            log.info("conversation_opened_for_contact", conversation_id=str(conversation_id))
            return conversation_id
    raise RuntimeError(f"no OPEN conversation could be found or made for {contact_urn!r}")


def conversation_of_contact(*, tenant_id: UUID, channel_uuid: str, contact_urn: str) -> UUID:
    """A survey's conversation (Q-3): the OPEN one of the key, else the key's latest."""
    found = (
        Conversation.objects.filter(
            tenant_id=tenant_id, channel_uuid=channel_uuid, contact_urn=contact_urn
        )
        .order_by("-status", "-created_at")  # "OPEN" sorts after "CLOSED": first when descending
        .values_list("id", flat=True)
        .first()
    )
    if found is None:
        raise ConversationNotFound(
            f"No conversation of contact {contact_urn!r} on channel {channel_uuid!r}."
        )
    return found


def envelope_message_store(
    *,
    direction: Literal["received", "sent"],
    tenant_id: UUID,
    channel_uuid: str,
    contact_urn: str,
    producer_id: str,
    content: str,
    timestamp: datetime | None,
) -> Stored:
    """Store a ``message.received`` (INBOUND, answered) or ``message.sent`` (OUTBOUND, not).

    ``timestamp`` None is the arrival time (Q-2: an empty ``created_at``). An
    id stored before with the same content is a replay (the same answer,
    nothing stored); with other content, ``message_id_conflict`` (W-5).
    """
    message_id, external_id = message_uuid(tenant_id=tenant_id, producer_id=producer_id)
    kind = Message.Type.INBOUND if direction == "received" else Message.Type.OUTBOUND
    bind_contextvars(message_id=str(message_id))
    try:
        with transaction.atomic():
            replay = _replay_of(message_id, kind, content)
            if replay is not None:
                return replay
            now = timezone.now()
            tenant_ensure(tenant_id=tenant_id)
            conversation_id = conversation_for_contact(
                tenant_id=tenant_id, channel_uuid=channel_uuid, contact_urn=contact_urn, now=now
            )
            bind_contextvars(conversation_id=str(conversation_id))
            if kind == Message.Type.INBOUND:
                _append_inbound(
                    message_id,
                    conversation_id,
                    tenant_id,
                    content,
                    timestamp or now,
                    now,
                    external_id=external_id,
                )
                return Stored(message_id, conversation_id, "queued")
            _append_agent_message(
                message_id, conversation_id, tenant_id, content, timestamp or now, now, external_id
            )
            return Stored(message_id, conversation_id, "stored")
    except IntegrityError:
        # The id's unique key: a concurrent delivery stored it first, and this
        # transaction's part rolled back. Answer as that one was answered.
        replay = _replay_of(message_id, kind, content)
        if replay is None:
            raise
        return replay


def _replay_of(message_id: UUID, kind: str, content: str) -> Stored | None:
    stored = Message.objects.filter(pk=message_id).values("conversation_id", "type", "content")
    row = stored.first()
    if row is None:
        return None
    if row["type"] != kind or row["content"] != content:
        raise MessageIdConflict(f"Message {message_id} was already received with other data.")
    status: Literal["queued", "stored"] = "queued" if kind == Message.Type.INBOUND else "stored"
    return Stored(message_id, row["conversation_id"], status, replay=True)


def _append_agent_message(
    message_id: UUID,
    conversation_id: UUID,
    tenant_id: UUID,
    content: str,
    timestamp: datetime,
    now: datetime,
    external_id: str | None,
) -> None:
    """An OUTBOUND message without ``reply_to``: never a reply, so G-3 counts it nowhere."""
    sql.insert(
        Message,
        {
            "id": message_id,
            "conversation": conversation_id,
            "type": Message.Type.OUTBOUND,
            "content": content,
            "timestamp": timestamp,
            "received_at": now,
            "external_id": external_id,
        },
    )
    events.message_sent(
        message_id=message_id,
        conversation_id=conversation_id,
        tenant_id=tenant_id,
        timestamp=timestamp,
        received_at=now,
        external_id=external_id,
    )
