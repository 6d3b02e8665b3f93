"""Every write of the lifecycle: automatic closes (T-1, T-2) and the archive (T-5)."""

from parley.lifecycle.services.archive import (
    ArchiveOutcome,
    transcript_archive,
    transcripts_archive_sweep,
)
from parley.lifecycle.services.closes import (
    TickReport,
    daily_close_run,
    daily_closes_plan,
    daily_closes_run,
    idle_close_sweep,
    lifecycle_tick,
)

__all__ = [
    "ArchiveOutcome",
    "TickReport",
    "daily_close_run",
    "daily_closes_plan",
    "daily_closes_run",
    "idle_close_sweep",
    "lifecycle_tick",
    "transcript_archive",
    "transcripts_archive_sweep",
]
