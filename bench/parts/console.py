"""The console part: open console streams must not slow the webhooks (SPEC C-4, L-1).

1. Fresh database, migrate, a staff user; start gunicorn, the Celery worker
   and beat, and the live process, with the production settings; a canary
   conversation proves the whole path; open a pool of conversations.
2. NEW_MESSAGE saturation (closed loop) fixes the half-load rate of this run.
3. Rounds, each with two half-load runs (open loop, ``core.half_load``) in
   alternating order: one with no console open, one with ``BENCH_CONSOLE_STREAMS``
   (20) event streams held open on the live process by a separate process
   (``bench.console_streams``): half on the conversation list, a quarter on
   the list of pending conversations, a quarter on busy conversations' threads,
   so that the streams do real work (a patch every batch) during the load.
4. The verdict: the median half-load p99 with the streams open is within 10 %
   of the median without (``console.p99_ratio`` <= 1.10), every stream was
   answered and patched, and the live process's CPU and RSS are reported.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import psutil

from bench import audit, config, monitor, report
from bench.common import Phases, log, run_record
from bench.loadgen import run_closed_loop
from bench.parts.core import canary, conversation_factory, half_load, webhook_factory
from bench.stack import BenchError, Stack, reset_database

NAME = "console"
USERNAME = "bench-operator"
TARGET_RATIO = 1.10


def _streams() -> int:
    return max(1, int(os.environ.get("BENCH_CONSOLE_STREAMS", "20")))


def create_operator(stack: Stack, password: str) -> None:
    env = {**stack.env, "DJANGO_SUPERUSER_PASSWORD": password}
    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "createsuperuser",
            "--noinput",
            "--username",
            USERNAME,
            "--email",
            "operator@example.com",
        ],
        cwd=config.ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise BenchError(f"createsuperuser failed: {result.stderr.strip()}")


def _cookies(response: http.client.HTTPResponse) -> dict[str, str]:
    found = {}
    for header in response.headers.get_all("Set-Cookie") or []:
        name, _, rest = header.partition("=")
        found[name.strip()] = rest.split(";", 1)[0]
    return found


def log_in(stack: Stack, password: str) -> str:
    """Log in through the console's form, as a browser does; the session cookie."""
    conn = http.client.HTTPConnection(stack.host, stack.live_port, timeout=10)
    try:
        conn.request("GET", "/console/login/")
        page = conn.getresponse()
        body = page.read().decode()
        csrf = _cookies(page).get("csrftoken", "")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', body)
        if page.status != 200 or not csrf or not token:
            raise BenchError(f"the console's login page answered {page.status}")
        form = urlencode(
            {
                "username": USERNAME,
                "password": password,
                "csrfmiddlewaretoken": token.group(1),
                "next": "/console/",
            }
        )
        conn.request(
            "POST",
            "/console/login/",
            form,
            {"Content-Type": "application/x-www-form-urlencoded", "Cookie": f"csrftoken={csrf}"},
        )
        answer = conn.getresponse()
        answer.read()
        session = _cookies(answer).get("sessionid")
        if answer.status != 302 or not session:
            raise BenchError(f"the console's login answered {answer.status}")
        return f"sessionid={session}"
    finally:
        conn.close()


def stream_paths(pool: list[str], count: int) -> list[str]:
    paths = []
    for n in range(count):
        if n % 4 in (0, 1):
            paths.append("/console/events/?view=conversations")
        elif n % 4 == 2:
            paths.append("/console/events/?view=conversations&pending=yes")
        else:
            paths.append(f"/console/events/?view=conversation&id={pool[n % len(pool)]}")
    return paths


class Streams:
    """The stream-holding process, started and stopped around one half-load run."""

    def __init__(self, stack: Stack, cookie: str, paths: list[str], logs: Path) -> None:
        self.workdir = logs
        (logs / "console-paths.txt").write_text("\n".join(paths))
        self.out = logs / "console-streams.json"
        self.out.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.console_streams",
                "--host",
                stack.host,
                "--port",
                str(stack.live_port),
                "--cookie",
                cookie,
                "--paths-file",
                str(logs / "console-paths.txt"),
                "--out",
                str(self.out),
            ],
            cwd=config.ROOT,
            stdout=subprocess.PIPE,
            stderr=(logs / "console-streams.log").open("ab"),
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if line != "ready":
            self.process.kill()
            raise BenchError("the console streams did not all open; see console-streams.log")
        self.opened = time.monotonic()

    def stop(self) -> list[dict[str, Any]]:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)
        seconds = time.monotonic() - self.opened
        return [{**got, "seconds": seconds} for got in json.loads(self.out.read_text())]


def run(cfg: config.BenchConfig, logs: Path) -> dict[str, Any]:
    started = datetime.now(UTC)
    origin = time.time()
    password = os.urandom(12).hex()
    reset_database(cfg)
    with Stack(cfg, logs) as stack:
        log("migrating")
        stack.migrate()
        create_operator(stack, password)
        log(
            f"starting gunicorn, Celery worker and beat on port {stack.port}, "
            f"the live process on {stack.live_port}"
        )
        stack.start()
        stack.wait_ready()
        conn = audit.connect(cfg.database_url)
        try:
            result = _measure(cfg, stack, conn, password, Phases(origin))
        finally:
            conn.close()
    result |= run_record(started, origin)
    report.write_json(cfg.results / "console.json", result)
    log(f"wrote {cfg.results / 'console.json'}")
    return result


def _measure(
    cfg: config.BenchConfig, stack: Stack, conn: audit.Conn, password: str, phases: Phases
) -> dict[str, Any]:
    host, port = stack.host, stack.port
    canary_s = canary(stack, conn, timeout=cfg.window_s + 30)
    log(f"canary replied in {canary_s:.1f} s")
    cookie = log_in(stack, password)

    log(f"opening {cfg.pool_conversations} conversations")
    pool = run_closed_loop(
        host,
        port,
        conversation_factory(f"{host}:{port}"),
        connections=cfg.connections,
        total=cfg.pool_conversations,
    ).accepted_tags(201)
    segment = max(3.0, cfg.saturation_seconds / cfg.rounds)
    log(f"NEW_MESSAGE saturation for {segment:g} s, to set the half-load rate")
    saturation = run_closed_loop(
        host,
        port,
        webhook_factory(f"{host}:{port}", pool),
        connections=cfg.connections,
        seconds=segment,
    )
    rate = saturation.rps(202) / 2
    # A fixed rate instead (smoke runs on a busy machine, where saturation drifts).
    rate = float(os.environ.get("BENCH_CONSOLE_RATE") or rate)
    audit.wait_until_settled(conn, minimum=cfg.window_s + 0.5, maximum=cfg.window_s + 120)

    live_tree: Callable[[], list[psutil.Process]] = lambda: monitor.tree(stack.pid("live"))  # noqa: E731
    cpu_groups: dict[str, Callable[[], list[psutil.Process]]] = {
        "web": lambda: monitor.tree(stack.pid("web")),
        "worker": lambda: monitor.tree(stack.pid("worker")),
        "live": live_tree,
        "postgres": lambda: monitor.by_name("postgres", "postmaster"),
    }
    paths = stream_paths(pool, _streams())
    without: list[dict[str, Any]] = []
    with_streams: list[dict[str, Any]] = []
    received: list[dict[str, Any]] = []
    live_rss: list[float] = [monitor.rss_mb(live_tree())]
    for n in range(cfg.rounds):
        order = ("without", "with") if n % 2 == 0 else ("with", "without")
        for side in order:
            log(f"round {n + 1}/{cfg.rounds}: half load {side} {len(paths)} console streams")
            if side == "without":
                run = half_load(cfg, stack, conn, phases, cpu_groups, pool, rate)
                without.append(run)
                continue
            streams = Streams(stack, cookie, paths, stack.logs)
            try:
                run = half_load(cfg, stack, conn, phases, cpu_groups, pool, rate)
                live_rss.append(monitor.rss_mb(live_tree()))
            finally:
                got = streams.stop()
            with_streams.append(run)
            received.extend(got)
    for run in (*without, *with_streams):
        run.pop("accepted", None)
        run.pop("done_at", None)

    # Each round's two runs are next to each other: their ratio shows how much
    # of the difference is the streams and how much the machine's drift.
    round_ratios = [
        w["p99_ms"] / o["p99_ms"] for w, o in zip(with_streams, without, strict=True) if o["p99_ms"]
    ]
    p99_without = report.median([r["p99_ms"] for r in without])
    p99_with = report.median([r["p99_ms"] for r in with_streams])
    ratio = p99_with / p99_without if p99_without else float("nan")
    patches = [r["patches"] for r in received]
    refused = [r for r in received if r["status"] != 200 or r["error"]]
    return {
        "streams": len(paths),
        "rounds": cfg.rounds,
        "half_load_target_rps": report.rnd(rate),
        "half_load_p99_ms_without": report.rnd(p99_without, 2),
        "half_load_p99_ms_with": report.rnd(p99_with, 2),
        "p99_ratio": report.rnd(ratio, 3),
        "p99_ratio_by_round": [round(r, 3) for r in round_ratios],
        "half_load_p50_ms_without": report.rnd(report.median([r["p50_ms"] for r in without]), 2),
        "half_load_p50_ms_with": report.rnd(report.median([r["p50_ms"] for r in with_streams]), 2),
        "errors_without": sum(r["errors"] for r in without),
        "errors_with": sum(r["errors"] for r in with_streams),
        "live_cpu_pct_with": cpu(with_streams, "live"),
        "live_cpu_pct_without": cpu(without, "live"),
        "web_cpu_pct_with": cpu(with_streams, "web"),
        "web_cpu_pct_without": cpu(without, "web"),
        "postgres_cpu_pct_with": cpu(with_streams, "postgres"),
        "postgres_cpu_pct_without": cpu(without, "postgres"),
        "live_rss_mb": [round(x, 1) for x in live_rss],
        "patches_per_stream_per_s": report.rnd(
            report.median([r["patches"] / r["seconds"] for r in received]), 2
        ),
        "patch_mb_per_stream": report.rnd(
            report.median([r["bytes"] for r in received]) / 1024 / 1024, 2
        ),
        "first_event_s_max": max((r["first_event_s"] for r in received), default=None),
        "streams_refused_or_failed": len(refused),
        "streams_without_a_patch": sum(1 for p in patches if p == 0),
        "targets": {
            "p99_within_10_percent": ratio <= TARGET_RATIO,
            "every_stream_patched": bool(received) and not refused and min(patches) > 0,
        },
        "runs": {"without": without, "with": with_streams},
    }


def cpu(runs: list[dict[str, Any]], group: str) -> float | None:
    """The median share of a core a group of processes used in these runs."""
    return report.rnd(report.median([r["cpu_pct"].get(group, 0.0) for r in runs]), 1)


def table(result: dict[str, Any]) -> str:
    def verdict(ok: bool) -> str:
        return "PASS" if ok else "FAIL"

    targets = result["targets"]
    rows = [
        f"console streams open: {result['streams']} (rounds: {result['rounds']}, "
        f"half load {result['half_load_target_rps']} req/s)",
        f"half-load p99 without / with streams: {result['half_load_p99_ms_without']} / "
        f"{result['half_load_p99_ms_with']} ms, ratio {result['p99_ratio']} "
        f"(target <= {TARGET_RATIO})  {verdict(targets['p99_within_10_percent'])}; "
        f"by round {result['p99_ratio_by_round']}",
        f"half-load p50 without / with: {result['half_load_p50_ms_without']} / "
        f"{result['half_load_p50_ms_with']} ms; errors {result['errors_without']} / "
        f"{result['errors_with']}",
        f"live process CPU with streams: {result['live_cpu_pct_with']} % of a core "
        f"(without: {result['live_cpu_pct_without']} %); RSS {result['live_rss_mb']} MB",
        f"CPU without / with, % of a core: web {result['web_cpu_pct_without']} / "
        f"{result['web_cpu_pct_with']}, PostgreSQL (all of the machine's) "
        f"{result['postgres_cpu_pct_without']} / {result['postgres_cpu_pct_with']}",
        f"per stream: {result['patches_per_stream_per_s']} patches/s, "
        f"{result['patch_mb_per_stream']} MB in a run; first event within "
        f"{result['first_event_s_max']} s; every stream patched  "
        f"{verdict(targets['every_stream_patched'])}",
    ]
    return "\n".join(rows)
