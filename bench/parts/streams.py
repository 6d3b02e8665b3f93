"""The streams part: the Pix collection API on the live process (SPEC X-13, L-1, L-3).

One run, on the production stack (gunicorn, the live process, Celery worker
and beat) and a fresh database:

1. **Wake latency.** One collector waits on a stream (a long poll); the bench
   commits a message for its ISPB (an INSERT and ``parley_ring`` in one
   transaction, as the application's writers do) and times from the commit's
   return to the collector's whole answer. ``BENCH_STREAM_SAMPLES`` times
   (200), each after the collector has been waiting a little while.
   Target: p99 at most 50 ms.
2. **Collection rate.** Six collectors drain a backlog of one ISPB for
   ``BENCH_STREAM_SECONDS`` (5 s), once asking ``multipart/json`` (up to 10
   messages an answer) and once ``application/json`` (one), in
   ``BENCH_STREAM_ROUNDS`` interleaved rounds (2). Target: the multipart
   rate at least 5 times the single one.
3. **Idle long polls beside the webhooks.** The core part's half-load test
   (NEW_MESSAGE at half of saturation, open loop), once without and once
   with ``BENCH_IDLE_POLLS`` (200) long polls held open on the live process
   all along, alternating ``BENCH_STREAM_HALF_ROUNDS`` times (1). Target: the
   p99 with them within 10 % of the p99 without; the live process's RSS with
   them is reported.
"""

from __future__ import annotations

import asyncio
import http.client
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from bench import audit, config, monitor, report
from bench.common import Phases, command, git_commit, log, machine
from bench.config import _float, _int
from bench.loadgen import run_closed_loop
from bench.parts import core
from bench.stack import BenchError, Stack, reset_database

NAME = "streams"
PIX_TABLE = "streams_pixmessage"
WAKE_ISPB = "90000001"
IDLE_ISPB_BASE = 80_000_000


def run(cfg: config.BenchConfig, logs: Path) -> dict[str, Any]:
    origin = time.time()
    reset_database(cfg)
    with Stack(cfg, logs) as stack:
        log("migrating")
        stack.migrate()
        log(f"starting gunicorn, the live process, Celery worker and beat (logs in {logs})")
        stack.start()
        stack.wait_ready()
        conn = audit.connect(cfg.database_url)
        try:
            wake = wake_latency(stack, conn, samples=_int("BENCH_STREAM_SAMPLES", 200))
            rates = collection_rates(
                stack,
                conn,
                seconds=_float("BENCH_STREAM_SECONDS", 5.0),
                rounds=_int("BENCH_STREAM_ROUNDS", 2),
            )
            idle = idle_polls_beside_half_load(
                cfg,
                stack,
                conn,
                polls=_int("BENCH_IDLE_POLLS", 200),
                rounds=_int("BENCH_STREAM_HALF_ROUNDS", 1),
                origin=origin,
            )
        finally:
            conn.close()
    log("stack stopped")
    ratio = rates["multipart_per_s"] / max(rates["single_per_s"], 1e-9)
    p99_ratio = idle["with_polls_p99_ms"] / max(idle["without_polls_p99_ms"], 1e-9)
    result: dict[str, Any] = {
        "wake_p50_ms": wake["p50_ms"],
        "wake_p99_ms": wake["p99_ms"],
        "wake_max_ms": wake["max_ms"],
        "wake_samples": wake["samples"],
        "multipart_per_s": rates["multipart_per_s"],
        "single_per_s": rates["single_per_s"],
        "multipart_to_single": report.rnd(ratio, 2),
        "half_load_rps": idle["rate_rps"],
        "half_load_p99_without_polls_ms": idle["without_polls_p99_ms"],
        "half_load_p99_with_polls_ms": idle["with_polls_p99_ms"],
        "half_load_p99_ratio": report.rnd(p99_ratio, 3),
        "idle_polls": idle["polls"],
        "idle_polls_held": idle["held"],
        "live_rss_idle_mb": idle["rss_idle_mb"],
        "live_rss_with_polls_mb": idle["rss_with_polls_mb"],
        "targets": {
            "wake_p99": wake["p99_ms"] <= 50.0,
            "multipart_to_single": ratio >= 5.0,
            "half_load_p99_with_polls": p99_ratio <= 1.10,
        },
        "wake": wake,
        "collection": rates,
        "idle_polls_detail": idle,
        "machine": machine(),
        "git_commit": git_commit(),
        "command": command(),
        "duration_s": round(time.time() - origin, 1),
    }
    report.write_json(cfg.results / "streams.json", result)
    log(f"wrote {cfg.results / 'streams.json'}")
    return result


# --- Talking to the live process -----------------------------------------------------------


class Collector:
    """One collector: a keep-alive connection that follows ``Pull-Next``."""

    def __init__(self, stack: Stack, ispb: str, accept: str) -> None:
        self.conn = http.client.HTTPConnection(stack.host, stack.live_port, timeout=30)
        self.accept = accept
        self.path = f"/api/pix/{ispb}/stream/start"

    def send(self) -> None:
        self.conn.request("GET", self.path, headers={"Accept": self.accept})

    def receive(self) -> tuple[int, bytes]:
        reply = self.conn.getresponse()
        body = reply.read()
        self.path = reply.getheader("Pull-Next") or self.path
        if reply.status not in (200, 204):
            raise BenchError(f"a stream GET answered {reply.status}: {body[:200]!r}")
        return reply.status, body

    def close(self) -> None:
        try:
            self.conn.request("DELETE", self.path)
            self.conn.getresponse().read()
        finally:
            self.conn.close()


def _insert_sql(count_expression: str) -> str:
    """Messages for an ISPB, ``g`` running over ``generate_series``; ``parley_ring`` as the
    application's writers do, in the same transaction (one statement, autocommit)."""
    return f"""
        WITH stored AS (
            INSERT INTO {PIX_TABLE} (
                end_to_end_id, valor,
                pagador_nome, pagador_cpf_cnpj, pagador_ispb, pagador_agencia,
                pagador_conta_transacional, pagador_tipo_conta,
                recebedor_nome, recebedor_cpf_cnpj, recebedor_ispb, recebedor_agencia,
                recebedor_conta_transacional, recebedor_tipo_conta,
                campo_livre, tx_id, data_hora_pagamento, created_at
            )
            SELECT 'E12345678' || to_char(now() AT TIME ZONE 'UTC', 'YYYYMMDDHH24MI')
                       || lpad((%(first)s + g)::text, 11, '0'),
                   90.20,
                   'Bench Payer', '12345678901', '12345678', '0001', '123456', 'CACC',
                   'Bench Receiver', '10987654321', %(ispb)s, '0002', '654321', 'SVGS',
                   '', 'bench' || (%(first)s + g), now(), now()
            FROM generate_series(1, {count_expression}) AS g
            RETURNING 1
        )
        SELECT parley_ring('parley_pix', %(ispb)s), (SELECT count(*) FROM stored)
    """


_serial = iter(range(0, 10**10, 10**6))


def store(conn: audit.Conn, ispb: str, count: int) -> None:
    conn.execute(_insert_sql("%(count)s"), {"first": next(_serial), "ispb": ispb, "count": count})


# --- 1. Wake latency ------------------------------------------------------------------------


def wake_latency(stack: Stack, conn: audit.Conn, *, samples: int) -> dict[str, Any]:
    log(f"wake latency: {samples} messages, each committed while a collector waits")
    collector = Collector(stack, WAKE_ISPB, "application/json")
    latencies: list[float] = []
    rng = random.Random(4)
    try:
        collector.send()
        status, _ = collector.receive()  # opens the stream: nothing yet, a 204 after 8 s
        if status != 204:
            raise BenchError("the wake-latency stream found messages it should not have")
        for _ in range(samples):
            collector.send()
            # Let the request reach its wait: the commit lands on a waiting collector.
            time.sleep(rng.uniform(0.03, 0.08))
            store(conn, WAKE_ISPB, 1)
            committed = time.perf_counter()
            status, _ = collector.receive()
            answered = time.perf_counter()
            if status != 200:
                raise BenchError("a committed message was not answered within the poll time")
            latencies.append((answered - committed) * 1000)
    finally:
        collector.close()
    result = {
        "samples": len(latencies),
        "p50_ms": report.rnd(report.percentile(latencies, 50), 2),
        "p99_ms": report.rnd(report.percentile(latencies, 99), 2),
        "max_ms": report.rnd(max(latencies), 2),
    }
    log(f"wake latency: p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms")
    return result


# --- 2. Collection rate -------------------------------------------------------------------


def collection_rates(
    stack: Stack, conn: audit.Conn, *, seconds: float, rounds: int
) -> dict[str, Any]:
    per_s: dict[str, list[float]] = {"multipart/json": [], "application/json": []}
    dry = 0
    for n in range(rounds):
        for accept in per_s:
            ispb = (
                f"{70_000_000 + 10 * n + len(per_s[accept]) + (5 if accept[0] == 'm' else 0):08d}"
            )
            # Enough that six collectors never run dry within the measured time.
            backlog = 40_000 if accept == "multipart/json" else 12_000
            store(conn, ispb, backlog)
            rate, ran_dry = _collect(stack, ispb, accept, seconds)
            per_s[accept].append(rate)
            dry += ran_dry
            log(f"round {n + 1}/{rounds}: {accept}: {rate:,.0f} messages/s (6 collectors)")
    return {
        "multipart_per_s": report.rnd(report.median(per_s["multipart/json"])),
        "single_per_s": report.rnd(report.median(per_s["application/json"])),
        "rounds_multipart_per_s": [report.rnd(r) for r in per_s["multipart/json"]],
        "rounds_single_per_s": [report.rnd(r) for r in per_s["application/json"]],
        "collectors": 6,
        "seconds_per_round": seconds,
        "collectors_that_ran_dry": dry,
    }


def _collect(stack: Stack, ispb: str, accept: str, seconds: float) -> tuple[float, int]:
    """Messages per second six collectors took in ``seconds``; how many ran dry."""
    counts = [0] * 6
    dry = [0] * 6
    start = threading.Barrier(7)
    stop = threading.Event()

    def collect(i: int) -> None:
        collector = Collector(stack, ispb, accept)
        try:
            start.wait()
            while not stop.is_set():
                collector.send()
                status, body = collector.receive()
                if status == 204:
                    dry[i] = 1
                    continue
                if not stop.is_set():
                    counts[i] += body.count(b'"endToEndId"')
        finally:
            collector.close()

    threads = [threading.Thread(target=collect, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    elapsed = time.perf_counter() - began
    for thread in threads:
        thread.join(30)
    return sum(counts) / elapsed, sum(dry)


# --- 3. Idle long polls beside the webhooks -------------------------------------------------


class IdlePolls:
    """``count`` collectors that each keep one long poll waiting, in one thread (asyncio).

    Their starts are spread over ``spread`` seconds (the poll time), as those of
    independent collectors are: started together, they would all come back
    together every 8 s, a burst no real population of collectors makes.
    """

    def __init__(self, stack: Stack, count: int, spread: float = 8.0) -> None:
        self.stack = stack
        self.count = count
        self.spread = spread
        self.waiting = 0
        self.errors = 0
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, name="idle-polls", daemon=True)

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + self.spread + 30
        while self.waiting < self.count and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # their first looks are done: they only wait from here on

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        tasks = [
            asyncio.create_task(self._poll(IDLE_ISPB_BASE + i, self.spread * i / self.count))
            for i in range(self.count)
        ]
        await self._stop.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _poll(self, ispb: int, delay: float) -> None:
        await asyncio.sleep(delay)
        reader, writer = await asyncio.open_connection(self.stack.host, self.stack.live_port)
        path = f"/api/pix/{ispb:08d}/stream/start"
        try:
            while True:
                writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
                self.waiting += 1
                head = await reader.readuntil(b"\r\n\r\n")
                self.waiting -= 1
                lines = head.decode("latin-1").split("\r\n")
                if lines[0].split()[1] != "204":
                    self.errors += 1
                headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
                headers = {k.lower(): v for k, v in headers.items()}
                await reader.readexactly(int(headers.get("content-length", "0")))
                path = headers.get("pull-next", path)
        finally:
            writer.close()


def idle_polls_beside_half_load(
    cfg: config.BenchConfig,
    stack: Stack,
    conn: audit.Conn,
    *,
    polls: int,
    rounds: int,
    origin: float,
) -> dict[str, Any]:
    host, port = stack.host, stack.port
    hostport = f"{host}:{port}"
    log(f"opening {cfg.pool_conversations} conversations for the half-load test")
    pool_run = run_closed_loop(
        host,
        port,
        core.conversation_factory(hostport),
        connections=cfg.connections,
        total=cfg.pool_conversations,
    )
    pool = pool_run.accepted_tags(201)
    if len(pool) < cfg.pool_conversations * 0.99:
        raise BenchError(f"only {len(pool)} of {cfg.pool_conversations} conversations opened")
    _, size = core.webhook_warmup(cfg, host, port, pool)
    seconds = max(2.0, cfg.saturation_seconds / cfg.rounds)
    log(f"NEW_MESSAGE saturation for {seconds:g} s, to find half load")
    saturation = run_closed_loop(
        host, port, core.webhook_factory(hostport, pool[:size]), connections=cfg.connections,
        seconds=seconds,
    )  # fmt: skip
    rate = saturation.rps(202) / 2
    audit.wait_until_settled(conn, minimum=cfg.window_s + 0.5, maximum=cfg.window_s + 120)

    live = psutil.Process(stack.pid("live"))
    me = psutil.Process()
    cpu_groups: dict[str, Callable[[], list[psutil.Process]]] = {
        "web": lambda: monitor.tree(stack.pid("web")),
        "live": lambda: monitor.tree(live.pid),
        "worker": lambda: monitor.tree(stack.pid("worker")),
        "postgres": lambda: monitor.by_name("postgres", "postmaster"),
        "client": lambda: [me],
    }
    phases = Phases(origin)
    rss_idle = monitor.rss_mb([live])
    without: list[dict[str, Any]] = []
    with_polls: list[dict[str, Any]] = []
    held: list[int] = []
    rss_with: list[float] = []
    for n in range(rounds):
        log(f"round {n + 1}/{rounds}: half load without long polls")
        run_ = core.half_load(cfg, stack, conn, phases, cpu_groups, pool, rate)
        run_.pop("accepted")
        run_.pop("done_at")
        without.append(run_)
        log(f"round {n + 1}/{rounds}: half load with {polls} long polls held on the live process")
        idle = IdlePolls(stack, polls)
        idle.start()
        try:
            held.append(idle.waiting)
            rss_with.append(monitor.rss_mb([live]))
            run_ = core.half_load(cfg, stack, conn, phases, cpu_groups, pool, rate)
            run_.pop("accepted")
            run_.pop("done_at")
            with_polls.append(run_)
            held.append(idle.waiting)
        finally:
            idle.stop()
        if idle.errors:
            raise BenchError(f"{idle.errors} idle long polls got an answer other than 204")
    p99_without = report.median([r["p99_ms"] for r in without])
    p99_with = report.median([r["p99_ms"] for r in with_polls])
    log(f"half load p99: {p99_without:.1f} ms without, {p99_with:.1f} ms with {polls} polls")
    return {
        "polls": polls,
        "held": min(held),
        "rate_rps": report.rnd(rate),
        "saturation_rps": report.rnd(saturation.rps(202)),
        "without_polls_p99_ms": report.rnd(p99_without, 2),
        "with_polls_p99_ms": report.rnd(p99_with, 2),
        "without_polls": without,
        "with_polls": with_polls,
        "rss_idle_mb": report.rnd(rss_idle),
        "rss_with_polls_mb": report.rnd(max(rss_with)),
    }


# --- The table ------------------------------------------------------------------------------


def table(r: dict[str, Any]) -> str:
    t = r["targets"]

    def verdict(ok: bool) -> str:
        return "PASS" if ok else "FAIL"

    rows = [
        (
            "Wake latency p50 / p99 / max",
            f"{r['wake_p50_ms']} / {r['wake_p99_ms']} / {r['wake_max_ms']} ms",
            "p99 <= 50 ms",
            verdict(t["wake_p99"]),
        ),
        (
            "Collected, multipart/json (6 collectors)",
            f"{r['multipart_per_s']:,.0f} messages/s",
            "",
            "",
        ),
        ("Collected, application/json (6)", f"{r['single_per_s']:,.0f} messages/s", "", ""),
        (
            "  multipart / single",
            f"{r['multipart_to_single']:g}",
            ">= 5",
            verdict(t["multipart_to_single"]),
        ),
        (
            f"Half load p99, without / with {r['idle_polls']} long polls",
            f"{r['half_load_p99_without_polls_ms']} / {r['half_load_p99_with_polls_ms']} ms"
            f" at {r['half_load_rps']:,.0f} req/s",
            "",
            "",
        ),
        (
            "  with / without",
            f"{r['half_load_p99_ratio']:g}",
            "<= 1.10",
            verdict(t["half_load_p99_with_polls"]),
        ),
        (
            "Live process RSS, idle / with the polls",
            f"{r['live_rss_idle_mb']} / {r['live_rss_with_polls_mb']} MB"
            f" ({r['idle_polls_held']} polls held)",
            "",
            "",
        ),
    ]
    head = ("measure", "value", "target", "")
    width = [max(len(str(row[i])) for row in [*rows, head]) for i in range(4)]
    line = "  ".join("-" * w for w in width)
    out = ["  ".join(h.ljust(w) for h, w in zip(head, width, strict=True)), line]
    out += ["  ".join(c.ljust(w) for c, w in zip(row, width, strict=True)).rstrip() for row in rows]
    m = r["machine"]
    out.append(line)
    out.append(
        f"{m['cpu_count']} x {m['cpu_model']}, Python {m['python']}, commit {r['git_commit']}"
    )
    return "\n".join(out)
