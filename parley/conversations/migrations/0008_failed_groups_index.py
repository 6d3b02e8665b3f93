"""The FAILED groups' partial index (G-8), built without blocking writes.

On PostgreSQL ``CREATE INDEX CONCURRENTLY`` leaves a busy groups table
writable while the index builds (it cannot run in a transaction, hence
``atomic = False``); elsewhere a plain ``CREATE INDEX``.
"""

from typing import Any

from django.db import migrations, models

INDEX = models.Index(
    condition=models.Q(("status", "FAILED")),
    fields=["-failed_at"],
    name="group_failed_idx",
)


def create(apps: Any, schema_editor: Any) -> None:
    model = apps.get_model("conversations", "MessageGroup")
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(INDEX.create_sql(model, schema_editor, concurrently=True))
    else:
        schema_editor.add_index(model, INDEX)


def drop(apps: Any, schema_editor: Any) -> None:
    schema_editor.remove_index(apps.get_model("conversations", "MessageGroup"), INDEX)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("conversations", "0007_reply_runners")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.AddIndex(model_name="messagegroup", index=INDEX)],
            database_operations=[migrations.RunPython(create, drop)],
        ),
    ]
