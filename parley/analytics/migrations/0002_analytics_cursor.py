"""The exporter's durable cursor exists from the start, so the outbox's
retention never deletes an event before it is exported."""

from typing import Any

from django.db import migrations

CURSOR = "analytics"


def create(apps: Any, schema_editor: Any) -> None:
    cursor = apps.get_model("outbox", "OutboxCursor")
    cursor.objects.get_or_create(name=CURSOR)


def delete(apps: Any, schema_editor: Any) -> None:
    apps.get_model("outbox", "OutboxCursor").objects.filter(name=CURSOR).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("analytics", "0001_initial"),
        ("outbox", "0002_postgresql_positions_and_functions"),
    ]

    operations = [migrations.RunPython(create, delete)]
