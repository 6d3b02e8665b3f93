"""PostgreSQL only: ``parley_outbox_horizon()``, the readers' horizon, ignoring other databases.

A reader takes the events of transactions older than every writing
transaction still running (``models``). Transaction ids are the whole
server's, so the snapshot's ``xmin`` counts transactions of *other*
databases too: on a server shared with other work, one of them left open
held every reader back. The horizon is therefore the oldest running
transaction that is not positively known to belong to another database
(``pg_stat_activity``), or the snapshot's ``xmax`` when there is none. A
transaction not seen there (it ended meanwhile, or the role may not see it)
still counts, so the horizon can only be too early, never too late.

Running transactions are never 2**31 ids apart, so their low 32 bits (what
``pg_stat_activity`` shows) identify them.
"""

from django.db import migrations

from parley.core.db import postgresql_only_sql

CREATE = """
CREATE OR REPLACE FUNCTION parley_outbox_horizon() RETURNS bigint
LANGUAGE sql STABLE
AS $$
    SELECT COALESCE(
        (SELECT min(x::text::bigint)
         FROM pg_snapshot_xip(snap) AS x
         WHERE mod(x::text::bigint, 4294967296) NOT IN (
             SELECT backend_xid::text::bigint FROM pg_stat_activity
             WHERE backend_xid IS NOT NULL AND datname IS DISTINCT FROM current_database()
         )),
        pg_snapshot_xmax(snap)::text::bigint
    )
    FROM pg_current_snapshot() AS snap
$$;
"""

DROP = "DROP FUNCTION IF EXISTS parley_outbox_horizon"


class Migration(migrations.Migration):
    dependencies = [("outbox", "0002_postgresql_positions_and_functions")]

    operations = [postgresql_only_sql(CREATE, DROP)]
