"""PostgreSQL only: ``parley_ring(channel, payload)``, a NOTIFY only while someone listens."""

from django.db import migrations

from parley.core.db import postgresql_only_sql

CREATE = """
CREATE OR REPLACE FUNCTION parley_ring(p_channel text, p_payload text DEFAULT '') RETURNS void
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
    PERFORM pg_notify(p_channel, p_payload)
    FROM live_listener WHERE channel = p_channel AND listening_until > now();
END
$$;
"""

DROP = "DROP FUNCTION IF EXISTS parley_ring"


class Migration(migrations.Migration):
    dependencies = [("live", "0001_initial")]

    operations = [postgresql_only_sql(CREATE, DROP)]
