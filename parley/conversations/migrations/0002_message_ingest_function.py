"""PostgreSQL only: the NEW_MESSAGE fast path as one function, so one round trip.

``services.message_ingest`` calls it on PostgreSQL; SQLite runs the same steps
from Python (``services.intake._ingest_in_python``). The test suite runs both against
the same cases. The steps, and why each is safe, are in the services module.

A function body runs each statement with a fresh snapshot (READ COMMITTED), so
the reads after the lock see whatever the previous lock holder committed, as
separate statements in one transaction would. Called outside a transaction it
is its own transaction: no BEGIN or COMMIT round trips.
"""

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
BEGIN
    -- Lock the conversation if it is OPEN and the id was never buffered (B-3).
    UPDATE conversations_conversation SET updated_at = p_now
    WHERE id = p_conversation_id AND status = 'OPEN'
      AND NOT EXISTS (SELECT 1 FROM conversations_bufferedmessage WHERE id = p_message_id);
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
        UPDATE conversations_messagegroup
        SET last_message_at = p_now,
            reply_due_at = LEAST(p_now + p_window, open_group.opened_at + p_max_wait)
        WHERE id = group_id;
    ELSE
        IF FOUND THEN
            -- Its window passed but its reply has not run yet: due now.
            UPDATE conversations_messagegroup
            SET status = 'CLOSED', closed_at = p_now, reply_due_at = p_now
            WHERE id = open_group.id;
        END IF;
        INSERT INTO conversations_messagegroup
            (conversation_id, status, opened_at, last_message_at, reply_due_at, reply_attempts)
        VALUES (p_conversation_id, 'OPEN', p_now, p_now,
                LEAST(p_now + p_window, p_now + p_max_wait), 0)
        RETURNING id INTO group_id;
    END IF;

    INSERT INTO conversations_message
        (id, conversation_id, type, content, timestamp, received_at, group_id)
    VALUES (p_message_id, p_conversation_id, 'INBOUND', p_content, p_timestamp, p_now, group_id);
END
$$
"""

DROP = "DROP FUNCTION IF EXISTS parley_message_ingest"


class Migration(migrations.Migration):
    dependencies = [("conversations", "0001_initial")]

    operations = [postgresql_only_sql(CREATE, DROP)]
