"""PostgreSQL only: the hot-path functions write their outbox events (T-4, C-4).

Replaces ``parley_message_ingest`` (migration 0002) and ``parley_record_replies``
(migration 0003) with the same steps plus, in the same transaction, the rows
that ``parley.conversations.events`` writes on the Python path:
``message.received`` for each stored message and ``reply.sent`` for each
recorded reply. ``parley_claim_due_groups`` is unchanged.
"""

from importlib import import_module

from django.db import migrations

from parley.core.db import postgresql_only_sql

CREATE = """
CREATE OR REPLACE FUNCTION parley_message_ingest(
    p_message_id uuid,
    p_conversation_id uuid,
    p_content text,
    p_timestamp timestamptz,
    p_now timestamptz,
    p_window interval,
    p_max_wait interval,  -- NULL: no cap (G-6 off)
    OUT stored boolean,  -- false: not an OPEN conversation, or a buffered id
    OUT group_id bigint  -- the message's group
)
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    open_group record;
    v_tenant uuid;
    v_due timestamptz;
BEGIN
    -- Lock the conversation if it is OPEN and the id was never buffered (B-3).
    UPDATE conversations_conversation SET updated_at = p_now
    WHERE id = p_conversation_id AND status = 'OPEN'
      AND NOT EXISTS (SELECT 1 FROM conversations_bufferedmessage WHERE id = p_message_id)
    RETURNING tenant_id INTO v_tenant;
    IF NOT FOUND THEN
        stored := false;
        RETURN;
    END IF;
    stored := true;

    SELECT id, opened_at, reply_due_at INTO open_group
    FROM conversations_messagegroup
    WHERE conversation_id = p_conversation_id AND status = 'OPEN';

    IF FOUND AND p_now <= open_group.reply_due_at THEN
        -- rules.joins_group, then rules.group_reply_due_at (LEAST skips a NULL cap).
        group_id := open_group.id;
        v_due := LEAST(p_now + p_window, open_group.opened_at + p_max_wait);
        UPDATE conversations_messagegroup
        SET last_message_at = p_now, reply_due_at = v_due
        WHERE id = group_id;
    ELSE
        IF FOUND THEN
            -- Its window passed but its reply has not run yet: due now.
            UPDATE conversations_messagegroup
            SET status = 'CLOSED', closed_at = p_now, reply_due_at = p_now
            WHERE id = open_group.id;
        END IF;
        v_due := LEAST(p_now + p_window, p_now + p_max_wait);
        INSERT INTO conversations_messagegroup
            (conversation_id, status, opened_at, last_message_at, reply_due_at, reply_attempts)
        VALUES (p_conversation_id, 'OPEN', p_now, p_now, v_due, 0)
        RETURNING id INTO group_id;
    END IF;

    INSERT INTO conversations_message
        (id, conversation_id, type, content, timestamp, received_at, group_id)
    VALUES (p_message_id, p_conversation_id, 'INBOUND', p_content, p_timestamp, p_now, group_id);

    -- events.message_received
    PERFORM parley_outbox_append(
        'message.received', p_now, v_tenant, p_conversation_id::text,
        jsonb_build_object(
            'message_id', p_message_id::text,
            'conversation_id', p_conversation_id::text,
            'group_id', group_id,
            'reply_due_at', parley_iso(v_due),
            'timestamp', parley_iso(p_timestamp)
        )
    );
END
$$;

CREATE OR REPLACE FUNCTION parley_record_replies(
    p_now timestamptz, p_group_ids bigint[], p_reply_ids uuid[], p_contents text[]
)
RETURNS TABLE (group_id bigint)
LANGUAGE plpgsql VOLATILE
AS $$
#variable_conflict use_column
DECLARE
    marked_ids bigint[];
    marked_conversations uuid[];
BEGIN
    PERFORM 1 FROM conversations_conversation
    WHERE id IN (
        SELECT g.conversation_id FROM conversations_messagegroup g WHERE g.id = ANY (p_group_ids)
    )
    ORDER BY id
    FOR UPDATE;
    -- A group already REPLIED (by a runner whose lease ran out) is skipped;
    -- the one-to-one reply_to would refuse a second reply anyway (G-3).
    WITH marked AS (
        UPDATE conversations_messagegroup g
        SET status = 'REPLIED', replied_at = p_now, reply_due_at = NULL
        WHERE g.id = ANY (p_group_ids) AND g.status <> 'REPLIED'
        RETURNING g.id, g.conversation_id
    )
    SELECT array_agg(marked.id), array_agg(marked.conversation_id)
    INTO marked_ids, marked_conversations
    FROM marked;
    IF marked_ids IS NULL THEN
        RETURN;
    END IF;
    INSERT INTO conversations_message
        (id, conversation_id, type, content, timestamp, received_at, reply_to_id)
    SELECT r.reply_id, m.conversation_id, 'OUTBOUND', r.content, p_now, p_now, m.group_id
    FROM unnest(marked_ids, marked_conversations) AS m (group_id, conversation_id)
    JOIN unnest(p_group_ids, p_reply_ids, p_contents) AS r (group_id, reply_id, content)
      ON r.group_id = m.group_id;
    -- R-1: the reply moves its conversation's updated_at.
    UPDATE conversations_conversation SET updated_at = p_now WHERE id = ANY (marked_conversations);
    -- events.reply_sent, one per recorded reply.
    INSERT INTO outbox_outboxevent (type, occurred_at, tenant_id, subject, data)
    SELECT 'reply.sent', p_now, c.tenant_id, m.conversation_id::text,
           jsonb_build_object(
               'message_id', r.reply_id::text,
               'conversation_id', m.conversation_id::text,
               'group_id', m.group_id
           )
    FROM unnest(marked_ids, marked_conversations) AS m (group_id, conversation_id)
    JOIN unnest(p_group_ids, p_reply_ids) AS r (group_id, reply_id) ON r.group_id = m.group_id
    JOIN conversations_conversation c ON c.id = m.conversation_id
    ORDER BY m.group_id;
    PERFORM parley_ring('parley_outbox');
    RETURN QUERY SELECT unnest(marked_ids);
END
$$;
"""

# Back to the functions of migrations 0002 and 0003 (same signatures).
_PREVIOUS = ";\n".join(
    import_module(f"parley.conversations.migrations.{name}").CREATE
    for name in ("0002_message_ingest_function", "0003_sweep_functions")
)


class Migration(migrations.Migration):
    dependencies = [
        ("conversations", "0004_tenants_and_lifecycle_fields"),
        ("outbox", "0002_postgresql_positions_and_functions"),
    ]

    operations = [postgresql_only_sql(CREATE, _PREVIOUS)]
