"""PostgreSQL only: the sweeper claims and records the due groups in batches.

``services.due_work_sweep`` calls these on PostgreSQL; elsewhere it answers
the due groups one by one with ``services.group_reply``. The test suite runs
both. The locking rule is the services module's: the conversation rows are
locked first (in id order, so two batches cannot deadlock; every other
writer locks a single conversation), then their groups are written.

Each statement of a function body takes a fresh snapshot (READ COMMITTED), so
the UPDATE after the locks sees what the previous lock holders committed: a
message that joined a group and moved its due time, or a CLOSE_CONVERSATION
task that answered it.
"""

from django.db import migrations

from parley.core.db import postgresql_only_sql

CREATE = """
CREATE OR REPLACE FUNCTION parley_claim_due_groups(
    p_now timestamptz, p_lease_end timestamptz, p_limit integer
)
RETURNS TABLE (group_id bigint, conversation_id uuid, last_message_at timestamptz)
LANGUAGE plpgsql VOLATILE
AS $$
#variable_conflict use_column
DECLARE
    locked uuid[];
BEGIN
    SELECT array_agg(c.id) INTO locked FROM (
        SELECT id FROM conversations_conversation
        WHERE id IN (
            SELECT g.conversation_id FROM conversations_messagegroup g
            WHERE g.status IN ('OPEN', 'CLOSED') AND g.reply_due_at <= p_now
            ORDER BY g.reply_due_at
            LIMIT p_limit
        )
        ORDER BY id
        FOR UPDATE
    ) c;
    -- Claim: CLOSED (no message joins any more) and leased until p_lease_end.
    RETURN QUERY
    UPDATE conversations_messagegroup g
    SET status = 'CLOSED',
        closed_at = CASE WHEN g.status = 'OPEN' THEN p_now ELSE g.closed_at END,
        reply_due_at = p_lease_end,
        reply_attempts = g.reply_attempts + 1
    WHERE g.conversation_id = ANY (locked)
      AND g.status IN ('OPEN', 'CLOSED') AND g.reply_due_at <= p_now
    RETURNING g.id, g.conversation_id, g.last_message_at;
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
    RETURN QUERY SELECT unnest(marked_ids);
END
$$;
"""

DROP = """
DROP FUNCTION IF EXISTS parley_claim_due_groups;
DROP FUNCTION IF EXISTS parley_record_replies;
"""


class Migration(migrations.Migration):
    dependencies = [("conversations", "0002_message_ingest_function")]

    operations = [postgresql_only_sql(CREATE, DROP)]
