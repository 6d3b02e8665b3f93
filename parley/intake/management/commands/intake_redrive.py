"""``manage.py intake_redrive``: list dead letters, or apply some again."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from parley.intake import selectors, services
from parley.intake.models import DeadLetter


class Command(BaseCommand):
    help = "Re-drive dead letters (by id, or every one with --code / --all); --list shows them."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("ids", nargs="*", type=int, help="Dead letter ids.")
        parser.add_argument("--code", help="Every dead letter with this code.")
        parser.add_argument(
            "--all", action="store_true", help="Every dead letter never re-driven successfully."
        )
        parser.add_argument("--list", action="store_true", help="List, do not re-drive.")

    def handle(self, *args: Any, **options: Any) -> None:
        letters = selectors.dead_letters(code=options["code"])
        if options["ids"]:
            letters = letters.filter(pk__in=options["ids"])
        elif not (options["code"] or options["all"] or options["list"]):
            raise CommandError("Name dead letter ids, or use --code, --all or --list.")
        if options["list"]:
            for letter in letters:
                self.stdout.write(
                    f"{letter.pk}\t{letter.received_at:%Y-%m-%dT%H:%M:%SZ}\t{letter.source}\t"
                    f"{letter.code}\t{letter.redrive_result or '-'}\t{letter.reason[:80]}"
                )
            return
        if options["all"] or options["code"]:
            letters = letters.exclude(redrive_result__in=["applied", "duplicate"])
        ids = list(letters.values_list("pk", flat=True))
        if options["ids"] and (missing := set(options["ids"]) - set(ids)):
            raise CommandError(f"No dead letter {', '.join(map(str, sorted(missing)))}.")
        results: dict[str, int] = {}
        for pk in reversed(ids):  # oldest first, as they arrived
            try:
                outcome = services.dead_letter_redrive(dead_letter_id=pk)
            except DeadLetter.DoesNotExist:
                continue
            result = outcome.code or outcome.outcome.value
            results[result] = results.get(result, 0) + 1
            self.stdout.write(f"{pk}\t{result}")
        summary = ", ".join(f"{count} {result}" for result, count in sorted(results.items()))
        self.stdout.write(f"re-drove {len(ids)} dead letters: {summary or 'none'}")
