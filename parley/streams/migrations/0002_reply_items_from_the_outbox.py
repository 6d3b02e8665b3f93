"""A reply item for every ``reply.sent`` outbox row, in its transaction, and the doorbell.

Every recorded reply writes ``reply.sent`` to the outbox in the transaction
that records it, on every path (the sweeper's PostgreSQL functions, the
Python steps). This trigger adds the reply's item in that same transaction
and, on PostgreSQL, rings ``parley_replies`` with the tenant through
``parley_ring`` (which notifies only while a live process listens). Reply
streams therefore see a reply exactly when it commits, and wake at once,
without listening to ``parley_outbox``, which rings for every fact of the
engine (README, "Reply streams", says why that matters).

SQLite has triggers too; it has no bell, and its waiters poll.
"""

from django.db import migrations

POSTGRESQL = """
CREATE OR REPLACE FUNCTION parley_reply_item_from_outbox() RETURNS trigger
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
    INSERT INTO streams_replyitem (message_id, conversation_id, tenant_id, created_at)
    VALUES (
        (NEW.data ->> 'message_id')::uuid,
        (NEW.data ->> 'conversation_id')::uuid,
        NEW.tenant_id,
        NEW.occurred_at
    )
    ON CONFLICT (message_id) DO NOTHING;
    PERFORM parley_ring('parley_replies', COALESCE(NEW.tenant_id::text, ''));
    RETURN NULL;
END
$$;

CREATE TRIGGER parley_reply_item AFTER INSERT ON outbox_outboxevent
FOR EACH ROW WHEN (NEW.type = 'reply.sent')
EXECUTE FUNCTION parley_reply_item_from_outbox();
"""

POSTGRESQL_DROP = """
DROP TRIGGER IF EXISTS parley_reply_item ON outbox_outboxevent;
DROP FUNCTION IF EXISTS parley_reply_item_from_outbox;
"""

# Django stores UUIDs on SQLite as 32 hex digits; the outbox's JSON has them dashed.
SQLITE = """
CREATE TRIGGER parley_reply_item AFTER INSERT ON outbox_outboxevent
FOR EACH ROW WHEN NEW.type = 'reply.sent'
BEGIN
    INSERT INTO streams_replyitem (message_id, conversation_id, tenant_id, created_at)
    VALUES (
        replace(json_extract(NEW.data, '$.message_id'), '-', ''),
        replace(json_extract(NEW.data, '$.conversation_id'), '-', ''),
        NEW.tenant_id,
        NEW.occurred_at
    )
    ON CONFLICT (message_id) DO NOTHING;
END;
"""

SQLITE_DROP = "DROP TRIGGER IF EXISTS parley_reply_item;"


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(POSTGRESQL)
    elif schema_editor.connection.vendor == "sqlite":
        schema_editor.execute(SQLITE)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(POSTGRESQL_DROP)
    elif schema_editor.connection.vendor == "sqlite":
        schema_editor.execute(SQLITE_DROP)


class Migration(migrations.Migration):
    dependencies = [
        ("streams", "0001_initial"),
        ("outbox", "0002_postgresql_positions_and_functions"),
        ("live", "0002_ring_function"),
    ]

    operations = [migrations.RunPython(forward, backward)]
