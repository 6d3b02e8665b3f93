"""PostgreSQL only: each row records its transaction, and the SQL helpers of the outbox.

* ``txid`` defaults to ``pg_current_xact_id()`` (as a bigint), which gives
  readers the commit-safe order that ``models`` explains. The model declares
  ``db_default=0``, which is what SQLite keeps; the code never writes it.
* ``parley_iso(timestamptz)``: the time format of ``services.iso``.
* ``parley_outbox_append(...)``: what ``services.event_append`` does, for the
  database functions of the hot paths.
"""

from django.db import migrations

from parley.core.db import postgresql_only_sql

CREATE = """
ALTER TABLE outbox_outboxevent
    ALTER COLUMN txid SET DEFAULT (pg_current_xact_id()::text::bigint);

CREATE OR REPLACE FUNCTION parley_iso(p_moment timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT to_char(p_moment AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') $$;

CREATE OR REPLACE FUNCTION parley_outbox_append(
    p_type text, p_occurred_at timestamptz, p_tenant_id uuid, p_subject text, p_data jsonb
) RETURNS void
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
    INSERT INTO outbox_outboxevent (type, occurred_at, tenant_id, subject, data)
    VALUES (p_type, p_occurred_at, p_tenant_id, p_subject, p_data);
    PERFORM parley_ring('parley_outbox');
END
$$;
"""

DROP = """
DROP FUNCTION IF EXISTS parley_outbox_append;
DROP FUNCTION IF EXISTS parley_iso;
ALTER TABLE outbox_outboxevent ALTER COLUMN txid SET DEFAULT 0;
"""


class Migration(migrations.Migration):
    dependencies = [("outbox", "0001_initial"), ("live", "0002_ring_function")]

    operations = [postgresql_only_sql(CREATE, DROP)]
