"""The writers part: replies from a writer that takes a second (SPEC G-8).

For each configuration (a writer, a number of Celery worker processes, and a
load as a share of what those processes can write):

1. Fresh database and Redis database, migrate, start gunicorn, the worker
   with that many processes and beat, with ``REPLY_WRITER`` set; the canary
   conversation proves the path through the slow writer.
2. The core part's conversational load (locust, ``bench.conversations``) for
   ``BENCH_SECONDS``, at the request rate that makes groups fall due at the
   chosen share of the writers' capacity: processes x calls per process (1
   for a plain function, ``REPLY_ASYNC_CONCURRENCY`` for an async writer) /
   the writer's seconds, in groups per second.
3. Settle and audit as the core part does; reply delays of the groups the
   trailing window closed (those a CLOSE_CONVERSATION answered early are
   counted apart), against window + writer time + 1 s; the writer
   concurrency reached, from the writers' own call logs.

By default: the 1 s plain writer at 2 and 4 processes and the 1 s async
writer at 2 processes, at ``BENCH_WRITERS_LOAD`` (0.5) of capacity, then the
plain writer at 2 processes past its capacity (``BENCH_WRITERS_OVERLOAD``,
1.3; 0 skips it), which shows where the limit is. ``BENCH_WRITER=dotted.path``
runs that writer alone, at 2 and 4 processes. ``python -m bench writers``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import audit, config, report, scenario
from bench.common import command, git_commit, log, machine
from bench.parts.core import (
    canary,
    conversations_process,
    read_conversation_records,
    wait_for_conversations,
)
from bench.stack import BenchError, Stack, reset_database
from bench.writers import overlap

NAME = "writers"
SYNC_WRITER = "bench.writers.sleep_1s"
ASYNC_WRITER = "bench.writers.async_sleep_1s"


@functools.cache
def _is_async(path: str) -> bool:
    """Whether the writer at ``path`` is an ``async def`` one (its runners' capacity differs)."""
    from django.utils.module_loading import import_string

    from parley.conversations.replies import is_async_writer

    try:
        return is_async_writer(import_string(path))
    except Exception as exc:  # a writer that needs Django set up to import: said, then sync
        log(f"writers: could not import {path} here ({exc}); counting it as a plain function")
        return False


@dataclasses.dataclass(frozen=True)
class Setup:
    writer: str
    processes: int
    load: float  # due groups per second, as a share of the writers' capacity

    @property
    def is_async(self) -> bool:
        return _is_async(self.writer)

    @property
    def label(self) -> str:
        kind = "async" if self.is_async else "sync"
        return f"{kind} {self.writer.rsplit('.', 1)[-1]} x{self.processes} @{self.load:g}"


def setups() -> list[Setup]:
    load = float(os.environ.get("BENCH_WRITERS_LOAD") or 0.5)
    overload = float(os.environ.get("BENCH_WRITERS_OVERLOAD") or 1.3)
    chosen = os.environ.get("BENCH_WRITER", "").strip()
    if chosen:
        return [Setup(chosen, 2, load), Setup(chosen, 4, load)]
    plan = [Setup(SYNC_WRITER, 2, load), Setup(SYNC_WRITER, 4, load), Setup(ASYNC_WRITER, 2, load)]
    if overload > 0:
        plan.append(Setup(SYNC_WRITER, 2, overload))
    return plan


def writer_seconds() -> float:
    return float(os.environ.get("BENCH_WRITER_SECONDS") or 1.0)


def async_concurrency() -> int:
    return int(os.environ.get("REPLY_ASYNC_CONCURRENCY") or 20)


def run(cfg: config.BenchConfig, logs: Path) -> dict[str, Any]:
    started = datetime.now(UTC)
    origin = time.time()
    results = [_run_one(cfg, logs, setup) for setup in setups()]
    result: dict[str, Any] = {
        "setups": results,
        "window_s": cfg.window_s,
        "writer_seconds": writer_seconds(),
        "seconds": cfg.seconds,
        "machine": machine(),
        "git_commit": git_commit(),
        "command": command(),
        "started_at": started.isoformat(timespec="seconds"),
        "duration_s": round(time.time() - origin, 1),
    }
    report.write_json(cfg.results / "writers.json", result)
    log(f"wrote {cfg.results / 'writers.json'}")
    return result


def _run_one(cfg: config.BenchConfig, logs: Path, setup: Setup) -> dict[str, Any]:
    seconds = writer_seconds()
    per_process = async_concurrency() if setup.is_async else 1
    capacity = setup.processes * per_process / seconds  # groups per second
    per_conversation, _ = scenario.expected_load(cfg.window_s, cfg.tolerance_s)
    groups_per_conversation = scenario.expected_groups(cfg.window_s, cfg.tolerance_s)
    rate = setup.load * capacity * per_conversation / groups_per_conversation
    bound = cfg.window_s + seconds + 1.0
    log(
        f"writers: {setup.label}: capacity {capacity:g} groups/s; load {setup.load:g} of it, "
        f"{rate:.1f} req/s for {cfg.seconds:g} s"
    )
    calls_log = Path(cfg.results) / "writer-calls"
    shutil.rmtree(calls_log, ignore_errors=True)
    calls_log.mkdir(parents=True)
    part_logs = logs / f"writers-{setup.processes}-{'async' if setup.is_async else 'sync'}"
    part_logs.mkdir(exist_ok=True)
    reset_database(cfg)
    env = {
        "REPLY_WRITER": setup.writer,
        "BENCH_WRITER_LOG": str(calls_log),
        "BENCH_WRITER_SECONDS": f"{seconds:g}",
    }
    with Stack(dataclasses.replace(cfg, worker_concurrency=setup.processes), part_logs, env) as s:
        s.migrate()
        s.start()
        s.wait_ready()
        conn = audit.connect(cfg.database_url)
        try:
            canary(s, conn, timeout=cfg.window_s + seconds + 30)
            shutil.rmtree(calls_log)
            calls_log.mkdir()
            records_path = cfg.results / "writers-conversations.tsv"
            summary_path = cfg.results / "writers-conversations.json"
            phase_start = datetime.now(UTC)
            t0 = time.time()
            wait_for_conversations(
                conversations_process(cfg, s, rate, records_path, summary_path, part_logs), s
            )
            phase_seconds = time.time() - t0
            phase_end = datetime.now(UTC)
            records = read_conversation_records(records_path)
            played = json.loads(summary_path.read_text())
            accepted = {r[4] for r in records if r[3] == 202 and r[4]}
            backlog = 0.0 if setup.load < 1 else cfg.seconds * (setup.load - 1) * 1.5
            settle = audit.wait_until_settled(
                conn,
                minimum=cfg.window_s + 2.0,
                maximum=cfg.window_s + cfg.tolerance_s + 60 + backlog,
            )
            delays = audit.reply_delays(conn, since=phase_start, until=phase_end)
            checked = audit.audit(conn, accepted, cfg.tolerance_s)
        finally:
            conn.close()
    window_delays = [d.delay_s for d in delays if d.cause == "window"]
    calls, most, processes = overlap(calls_log)
    p99 = report.percentile(window_delays, 99)
    errors = sum(
        1 for r in records if r[3] != {"C": 201, "M": 202, "R": 202, "X": 200}.get(r[2], r[3])
    )
    if played.get("finished_users", 0) < played.get("users", 0):
        log("writers: some locust users did not finish in time")
    result = {
        "label": setup.label,
        "writer": setup.writer,
        "async": setup.is_async,
        "processes": setup.processes,
        "calls_per_process": per_process,
        "capacity_groups_per_s": round(capacity, 2),
        "load_share": setup.load,
        "request_rate_target": round(rate, 2),
        "due_groups_per_s": round(len(delays) / max(phase_seconds, 1e-9), 2),
        "reply_delay_p50_s": report.rnd(report.percentile(window_delays, 50), 3),
        "reply_delay_p99_s": report.rnd(p99, 3),
        "reply_delay_max_s": report.rnd(max(window_delays) if window_delays else math.nan, 3),
        "reply_delay_min_s": report.rnd(min(window_delays) if window_delays else math.nan, 3),
        "reply_delay_groups": len(window_delays),
        "reply_delay_bound_s": bound,
        "writer_calls": calls,
        "writer_concurrency_max": most,
        "writer_processes": processes,
        "lost": checked.lost,
        "duplicated": checked.duplicated,
        "failed_groups": checked.failed_groups,
        "request_errors": errors,
        "settle_s": round(settle, 1),
        # The target holds only below capacity (G-8: "as long as there are workers enough").
        "target_met": (p99 <= bound) if setup.load < 1 else None,
    }
    if checked.lost or checked.duplicated:
        raise BenchError(f"writers {setup.label}: lost {checked.lost}, dup {checked.duplicated}")
    log(
        f"writers: {setup.label}: reply delay p50/p99/max "
        f"{result['reply_delay_p50_s']}/{result['reply_delay_p99_s']}/"
        f"{result['reply_delay_max_s']} s over {len(window_delays)} groups "
        f"(bound {bound:g} s); writer calls at once: {most} in {processes} processes"
    )
    return result


def table(result: dict[str, Any]) -> str:
    head = (
        "writer / processes / load",
        "due/s",
        "cap/s",
        "delay p50 / p99 / max (s)",
        "bound",
        "",
        "at once",
        "groups",
        "lost/dup/failed",
    )
    rows = [head]
    for r in result["setups"]:
        verdict = "" if r["target_met"] is None else ("PASS" if r["target_met"] else "FAIL")
        rows.append(
            (
                r["label"],
                f"{r['due_groups_per_s']:g}",
                f"{r['capacity_groups_per_s']:g}",
                f"{r['reply_delay_p50_s']} / {r['reply_delay_p99_s']} / {r['reply_delay_max_s']}",
                f"{r['reply_delay_bound_s']:g} s",
                verdict or "(over capacity)",
                f"{r['writer_concurrency_max']} in {r['writer_processes']}",
                str(r["reply_delay_groups"]),
                f"{r['lost']}/{r['duplicated']}/{r['failed_groups']}",
            )
        )
    width = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, width, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in width))
    m = result["machine"]
    lines.append(
        f"window {result['window_s']:g} s, writer {result['writer_seconds']:g} s, "
        f"{result['seconds']:g} s each; {m['cpu_count']} x {m['cpu_model']}, "
        f"commit {result['git_commit']}"
    )
    return "\n".join(line.rstrip() for line in lines)
