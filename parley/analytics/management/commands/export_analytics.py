"""``manage.py export_analytics``: export the outbox's new events now (T-4)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from parley.analytics import services


class Command(BaseCommand):
    help = (
        "Write the outbox's new events to the object store as CloudEvents JSON lines, "
        "until it is caught up (what the scheduler does every ANALYTICS_EXPORT_SECONDS)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        report = services.analytics_export()
        if not report.ran:
            self.stderr.write("Another exporter is running; nothing done.")
            return
        self.stdout.write(
            f"{report.batches} batches, {report.events} outbox events, "
            f"{report.exported} exported in {report.files} files."
        )
