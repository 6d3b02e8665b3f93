from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from parley.conversations.audit import exactly_once_audit
from parley.conversations.models import MessageGroup

# FAILED groups listed after the ledger, newest failure first.
FAILED_LISTED = 20


class Command(BaseCommand):
    help = (
        "Check the exactly-once ledger: every message in one group, every group answered "
        "once or FAILED with a reason (listed, for manage.py retry_replies)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        audit = exactly_once_audit()
        self.stdout.write(json.dumps(audit.as_dict(), indent=2))
        if audit.failed_groups:
            self.stdout.write(
                f"{audit.failed_groups} FAILED group(s) ({audit.failed_messages} messages): "
                "no reply until retried (manage.py retry_replies ID ... or --all-failed)."
            )
            failed = MessageGroup.objects.filter(status=MessageGroup.Status.FAILED).order_by(
                "-failed_at"
            )
            for group in failed[:FAILED_LISTED]:
                assert group.failed_at is not None
                self.stdout.write(
                    f"  group {group.pk} of conversation {group.conversation_id}, failed "
                    f"{group.failed_at.isoformat()} after {group.reply_attempts} attempts: "
                    f"{group.last_error}"
                )
        if audit.lost or audit.duplicated:
            raise CommandError(f"lost={audit.lost} duplicated={audit.duplicated}")
