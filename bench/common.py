"""What every part of the benchmark shares: the log line, the clock, the run's metadata."""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from bench import config


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class Phases:
    """Start and end times of the phases, relative to the run's start (for the plot)."""

    def __init__(self, origin: float) -> None:
        self.origin = origin
        self.spans: list[tuple[str, float, float]] = []

    def add(self, name: str, start: float, end: float) -> None:
        self.spans.append((name, start - self.origin, end - self.origin))


def git_commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=config.ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=config.ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}-dirty" if dirty else head


def machine() -> dict[str, Any]:
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def run_record(started: datetime, origin: float) -> dict[str, Any]:
    """What every result file says of its run: machine, commit, command, start, duration."""
    return {
        "machine": machine(),
        "git_commit": git_commit(),
        "command": command(),
        "started_at": started.isoformat(timespec="seconds"),
        "duration_s": round(time.time() - origin, 1),
    }


def command() -> str:
    knobs = " ".join(
        f"{k}={shlex.quote(v)}" for k, v in sorted(os.environ.items()) if k.startswith("BENCH_")
    )
    base = "make bench" if os.environ.get("MAKELEVEL") else "python -m bench"
    return f"{knobs} {base}".strip()
