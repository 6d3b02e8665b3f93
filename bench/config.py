"""The benchmark's knobs, all from the environment (bench/README.md, "Knobs")."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    return float(raw) if raw else default


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


def _str(name: str, default: str) -> str:
    return os.environ.get(name, "").strip() or default


@dataclass(frozen=True)
class BenchConfig:
    # Main (conversational, half-load) phase length; 600 is the soak.
    seconds: float
    # Per endpoint, split over the interleaved rounds.
    saturation_seconds: float
    rounds: int
    connections: int
    pool_conversations: int
    postgres_url: str  # a maintenance database: the bench database is made from here
    database: str
    redis_url: str
    sample_seconds: float
    # Measured span of the open-loop half-load phase (after a warm-up).
    half_load_seconds: float
    # Conversational phase rate, as a share of NEW_MESSAGE saturation...
    conversations_share: float
    # ...or an absolute rate (req/s), which wins when set.
    conversations_rate: float | None
    # Celery worker processes (the production knob, WORKER_CONCURRENCY).
    worker_concurrency: int
    # The application's own knobs, read the same way as config/settings.py.
    window_s: float
    tolerance_s: float
    results: Path

    @property
    def redis_cache_url(self) -> str:
        """The Redis database after the broker's, for the Django cache (REDIS_CACHE_DB)."""
        base, _, db = self.redis_url.rpartition("/")
        return f"{base}/{int(db) + 1}" if db.isdigit() else self.redis_url

    @property
    def database_url(self) -> str:
        base, _, _ = self.postgres_url.rpartition("/")
        return f"{base}/{self.database}"


def load() -> BenchConfig:
    database = _str("BENCH_DATABASE", "parley_bench")
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", database):
        raise SystemExit("BENCH_DATABASE must be a plain lower-case identifier.")
    seconds = _float("BENCH_SECONDS", 60.0)
    if seconds <= 0:
        raise SystemExit("BENCH_SECONDS must be positive.")
    share = _float("BENCH_CONVERSATIONS_SHARE", 0.3)
    if not 0 < share <= 1.5:
        raise SystemExit("BENCH_CONVERSATIONS_SHARE must be in (0, 1.5].")
    return BenchConfig(
        seconds=seconds,
        saturation_seconds=_float("BENCH_SATURATION_SECONDS", 15.0),
        rounds=max(1, _int("BENCH_ROUNDS", 3)),
        connections=max(1, _int("BENCH_CONNECTIONS", 32)),
        pool_conversations=max(1, _int("BENCH_POOL_CONVERSATIONS", 3000)),
        postgres_url=_str("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
        database=database,
        redis_url=_str("BENCH_REDIS_URL", "redis://127.0.0.1:6379/5"),
        sample_seconds=_float("BENCH_SAMPLE_SECONDS", 5.0 if seconds >= 300 else 2.0),
        half_load_seconds=max(1.0, _float("BENCH_HALF_LOAD_SECONDS", 15.0)),
        conversations_share=share,
        conversations_rate=_float("BENCH_CONVERSATIONS_RATE", 0.0) or None,
        worker_concurrency=max(1, _int("WORKER_CONCURRENCY", 2)),
        window_s=_float("GROUP_WINDOW_SECONDS", 5.0),
        tolerance_s=_float("ORPHAN_TOLERANCE_SECONDS", 6.0),
        results=Path(_str("BENCH_RESULTS_DIR", str(RESULTS))),
    )
