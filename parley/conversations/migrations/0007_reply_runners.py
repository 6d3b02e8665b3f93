"""Reply runners and failed groups (G-8).

1. ``parley_claim_due_groups`` replaces the function of migration 0003 with
   the same claim (a due OPEN or CLOSED group becomes CLOSED, leased until
   ``p_lease_end``, one more attempt, under its conversation's lock) and two
   changes for concurrent runners:
   - a conversation that another transaction holds locked is skipped
     (``SKIP LOCKED``) instead of waited for, so runners claiming at the same
     time take different groups (the one that holds it claims it, or it is
     free again at the next look). Nothing waits, so nothing can deadlock,
     and the locks are taken in due order;
   - it returns each group's attempt count and tenant, which the writer's
     request and a failure's record need.
   A group that was claimed by someone else between this statement's
   snapshot and its lock is not due any more when the UPDATE re-reads it; if
   that leaves nothing claimed, the function looks again (at most three times).
   ``parley_record_replies`` (migration 0005) is unchanged.

The FAILED groups' index comes in the next migration, built without
blocking writes.
"""

from importlib import import_module

from django.db import migrations

from parley.core.db import postgresql_only_sql

CREATE = """
DROP FUNCTION IF EXISTS parley_claim_due_groups(timestamptz, timestamptz, integer);
CREATE FUNCTION parley_claim_due_groups(
    p_now timestamptz, p_lease_end timestamptz, p_limit integer
)
RETURNS TABLE (
    group_id bigint,
    conversation_id uuid,
    last_message_at timestamptz,
    reply_attempts integer,
    tenant_id uuid
)
LANGUAGE plpgsql VOLATILE
AS $$
#variable_conflict use_column
DECLARE
    locked uuid[];
BEGIN
    FOR look IN 1..3 LOOP
        SELECT array_agg(DISTINCT due.conversation_id) INTO locked FROM (
            SELECT g.conversation_id
            FROM conversations_messagegroup g
            JOIN conversations_conversation c ON c.id = g.conversation_id
            WHERE g.status IN ('OPEN', 'CLOSED') AND g.reply_due_at <= p_now
            ORDER BY g.reply_due_at
            LIMIT p_limit
            FOR UPDATE OF c SKIP LOCKED
        ) due;
        EXIT WHEN locked IS NULL;
        -- Claim: CLOSED (no message joins any more) and leased until p_lease_end.
        RETURN QUERY
        UPDATE conversations_messagegroup g
        SET status = 'CLOSED',
            closed_at = CASE WHEN g.status = 'OPEN' THEN p_now ELSE g.closed_at END,
            reply_due_at = p_lease_end,
            reply_attempts = g.reply_attempts + 1
        FROM conversations_conversation c
        WHERE c.id = g.conversation_id
          AND g.conversation_id = ANY (locked)
          AND g.status IN ('OPEN', 'CLOSED') AND g.reply_due_at <= p_now
        RETURNING g.id, g.conversation_id, g.last_message_at, g.reply_attempts, c.tenant_id;
        EXIT WHEN FOUND;
    END LOOP;
END
$$;
"""

# Back to migration 0003's function (its result has fewer columns: DROP first).
_PREVIOUS = (
    "DROP FUNCTION IF EXISTS parley_claim_due_groups(timestamptz, timestamptz, integer);\n"
    + import_module("parley.conversations.migrations.0003_sweep_functions")
    .CREATE.split("CREATE OR REPLACE FUNCTION parley_record_replies")[0]
)


class Migration(migrations.Migration):
    dependencies = [("conversations", "0006_lifecycle_indexes")]

    operations = [postgresql_only_sql(CREATE, _PREVIOUS)]
