"""Indexes of the lifecycle sweeps (T-1, T-5), built without blocking writes.

On PostgreSQL ``CREATE INDEX CONCURRENTLY`` leaves a busy conversations table
writable while the index builds (it cannot run in a transaction, hence
``atomic = False``); elsewhere a plain ``CREATE INDEX``.
"""

from typing import Any

from django.db import migrations, models

INDEXES = [
    models.Index(
        condition=models.Q(("status", "OPEN")),
        fields=["tenant", "updated_at"],
        name="conversation_open_activity_idx",
    ),
    models.Index(
        condition=models.Q(("archived_at__isnull", True), ("status", "CLOSED")),
        fields=["closed_at"],
        name="conversation_unarchived_idx",
    ),
]


def create(apps: Any, schema_editor: Any) -> None:
    model = apps.get_model("conversations", "Conversation")
    for index in INDEXES:
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(index.create_sql(model, schema_editor, concurrently=True))
        else:
            schema_editor.add_index(model, index)


def drop(apps: Any, schema_editor: Any) -> None:
    model = apps.get_model("conversations", "Conversation")
    for index in INDEXES:
        schema_editor.remove_index(model, index)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("conversations", "0005_functions_write_the_outbox"),
        ("tenants", "0002_default_tenant"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddIndex(model_name="conversation", index=index) for index in INDEXES
            ],
            database_operations=[migrations.RunPython(create, drop)],
        ),
    ]
