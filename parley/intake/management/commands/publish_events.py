"""``manage.py publish_events FILE|-``: publish JSON lines to the intake queues."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from parley.intake.publish import publish_events


class Command(BaseCommand):
    help = (
        "Publish webhook bodies, one JSON object per line, to INTAKE_BROKER_URL (or --url), "
        "each to the partition of its conversation."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="A file of JSON lines, or - for standard input.")
        parser.add_argument("--url", help="Broker URL (default: INTAKE_BROKER_URL).")

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["file"]
        if name == "-":
            source: IO[bytes] = sys.stdin.buffer
            total = None
        else:
            path = Path(name)
            if not path.is_file():
                raise CommandError(f"No such file: {name}")
            source = path.open("rb")
            total = _count_lines(path)
        progress = _Progress(total) if sys.stderr.isatty() else None
        try:
            summary = publish_events(
                _lines(source), url=options["url"], progress=progress.update if progress else None
            )
        finally:
            if progress is not None:
                progress.close()
            if source is not sys.stdin.buffer:
                source.close()
        self.stdout.write(summary.line())
        for queue, count in sorted(summary.by_queue.items()):
            self.stdout.write(f"  {queue}: {count}")


def _lines(source: IO[bytes]) -> Iterator[bytes]:
    yield from source


def _count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for _ in handle)


class _Progress:
    """A one-line progress bar on standard error, redrawn at most ten times a second."""

    WIDTH = 30

    def __init__(self, total: int | None) -> None:
        self.total = total
        self.started = time.monotonic()
        self.drawn = 0.0

    def update(self, done: int) -> None:
        now = time.monotonic()
        if now - self.drawn < 0.1 and done != self.total:
            return
        self.drawn = now
        rate = done / max(now - self.started, 1e-9)
        if self.total:
            filled = int(self.WIDTH * done / self.total)
            bar = "#" * filled + "-" * (self.WIDTH - filled)
            text = f"\r[{bar}] {done}/{self.total} ({rate:,.0f}/s)"
        else:
            text = f"\r{done} published ({rate:,.0f}/s)"
        sys.stderr.write(text)
        sys.stderr.flush()

    def close(self) -> None:
        sys.stderr.write("\n")
        sys.stderr.flush()
