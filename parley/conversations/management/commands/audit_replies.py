from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from parley.conversations.audit import exactly_once_audit


class Command(BaseCommand):
    help = "Check the exactly-once ledger: every message in one reply, every group answered once."

    def handle(self, *args: Any, **options: Any) -> None:
        audit = exactly_once_audit()
        self.stdout.write(json.dumps(audit.as_dict(), indent=2))
        if audit.lost or audit.duplicated:
            raise CommandError(f"lost={audit.lost} duplicated={audit.duplicated}")
