"""Resource sampling: RSS of the web and worker trees over time, CPU per phase."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import psutil

MB = 1024 * 1024


def tree(pid: int) -> list[psutil.Process]:
    """A process and its descendants (gunicorn's master and workers, Celery's pool)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def by_name(*names: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] in names:
            found.append(proc)
    return found


def rss_mb(procs: Iterable[psutil.Process]) -> float:
    total = 0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            total += proc.memory_info().rss
    return total / MB


@dataclass
class RssSampler:
    """Samples the summed RSS of each named process tree every ``interval`` seconds."""

    trees: dict[str, Callable[[], list[psutil.Process]]]
    interval: float
    origin: float
    series: list[dict[str, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def sample(self) -> dict[str, float]:
        point = {"t": round(time.time() - self.origin, 2)}
        for name, procs in self.trees.items():
            point[name] = round(rss_mb(procs()), 1)
        self.series.append(point)
        return point

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def start(self) -> None:
        self.sample()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


@dataclass
class CpuMeter:
    """CPU seconds used by each group of processes between ``start()`` and ``stop()``.

    Processes are found again at both ends; a process that exits in between
    (a recycled gunicorn worker) takes its last seconds with it, so the
    figures are a close lower bound.
    """

    groups: dict[str, Callable[[], list[psutil.Process]]]

    def _snapshot(self) -> dict[str, dict[int, float]]:
        snap: dict[str, dict[int, float]] = {}
        for name, procs in self.groups.items():
            snap[name] = {}
            for proc in procs():
                try:
                    times = proc.cpu_times()
                    snap[name][proc.pid] = times.user + times.system
                except psutil.Error:
                    pass
        return snap

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._before = self._snapshot()

    def stop(self) -> dict[str, float]:
        """Percent of one core used by each group (200 = both cores of a 2-core machine)."""
        after = self._snapshot()
        wall = max(time.monotonic() - self._t0, 1e-9)
        usage = {}
        for name, pids in after.items():
            before = self._before.get(name, {})
            used = sum(max(0.0, cpu - before.get(pid, 0.0)) for pid, cpu in pids.items())
            usage[name] = round(100.0 * used / wall, 1)
        return usage
