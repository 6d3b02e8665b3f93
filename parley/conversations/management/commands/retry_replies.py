from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from parley.conversations.models import MessageGroup
from parley.conversations.services import group_retry
from parley.core.errors import ParleyError


class Command(BaseCommand):
    help = (
        "Send FAILED message groups back to the reply writer (G-8): each is due again at "
        "once, with REPLY_MAX_ATTEMPTS new attempts."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("group_ids", nargs="*", type=int, help="Ids of FAILED groups.")
        parser.add_argument(
            "--all-failed", action="store_true", help="Every FAILED group, oldest failure first."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        group_ids: list[int] = options["group_ids"]
        if options["all_failed"]:
            group_ids += list(
                MessageGroup.objects.filter(status=MessageGroup.Status.FAILED)
                .order_by("failed_at")
                .values_list("pk", flat=True)
            )
        if not group_ids:
            raise CommandError("Name the groups to retry, or pass --all-failed.")
        refused = 0
        for group_id in dict.fromkeys(group_ids):
            try:
                group = group_retry(group_id=group_id)
            except ParleyError as exc:
                refused += 1
                self.stderr.write(exc.detail)
            else:
                self.stdout.write(
                    f"group {group.pk} of conversation {group.conversation_id}: due again"
                )
        if refused:
            raise CommandError(f"{refused} group(s) could not be retried.")
