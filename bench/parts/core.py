"""The core part: the webhook intake and the replies (bench/README.md, "What it does").

1. Fresh database and Redis database, migrate, start gunicorn, Celery worker
   and beat with the production settings; wait for ``/readyz``; one canary
   conversation proves the whole path (webhook, task, reply) works.
2. Open a pool of conversations (NEW_CONVERSATION throughput, for the record).
3. Saturation, interleaved in rounds so that the machine's drift hits both
   alike: ``/healthz``, then NEW_MESSAGE into random pool conversations, then
   wait until every group those messages made is answered.
4. Half load: NEW_MESSAGE at half the saturation throughput, open loop, with
   the same generator (the latency target of P-2).
5. The conversational phase (``BENCH_SECONDS``): many conversations in bursts,
   driven by locust at a share of the NEW_MESSAGE saturation throughput (the
   reply delays).
6. Wait for the window plus a margin, then audit the database.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from bench import audit, config, monitor, report, scenario
from bench.common import Phases, log, now_iso, run_record
from bench.loadgen import LoadResult, request_bytes, run_closed_loop, run_open_loop
from bench.stack import BenchError, Stack, reset_database

NAME = "core"
WARMUP_SECONDS = 1.0
# During NEW_MESSAGE saturation, each conversation gets a message about this
# often, on average (see the pool narrowing in _phases).
PACE_SECONDS = 2.5


def webhook_warmup(
    cfg: config.BenchConfig, host: str, port: int, pool: list[str]
) -> tuple[LoadResult, int]:
    """NEW_MESSAGE saturation for WARMUP_SECONDS; returns it and the paced pool size.

    The size is how many pool conversations make about PACE_SECONDS of that
    traffic: each then gets a message every PACE_SECONDS on average, so some
    messages start a group and most join one, as bursts do.
    """
    warm = run_closed_loop(
        host,
        port,
        webhook_factory(f"{host}:{port}", pool),
        connections=cfg.connections,
        seconds=WARMUP_SECONDS,
    )
    size = int(min(len(pool), max(4 * cfg.connections, warm.rps(202) * PACE_SECONDS)))
    return warm, size


def webhook_factory(host: str, conversations: list[str]) -> Callable[[], tuple[bytes, str]]:
    """NEW_MESSAGE requests, each a fresh id into a random open conversation."""
    rng = random.Random()
    choice = rng.choice
    uuid4 = uuid.uuid4
    counter = [0]
    head = f"POST /webhook/ HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
    prefix = '{"type":"NEW_MESSAGE","timestamp":"' + now_iso() + '","data":{"id":"'

    def make() -> tuple[bytes, str]:
        counter[0] += 1
        message_id = str(uuid4())
        body = (
            prefix
            + message_id
            + '","conversation_id":"'
            + choice(conversations)
            + '","content":"Hi, I would like information about renting an apartment near '
            + f'the station. Message {counter[0]}."}}}}'
        ).encode()
        return head.encode() + b"Content-Length: %d\r\n\r\n" % len(body) + body, message_id

    return make


def conversation_factory(host: str) -> Callable[[], tuple[bytes, str]]:
    prefix = '{"type":"NEW_CONVERSATION","timestamp":"' + now_iso() + '","data":{"id":"'

    def make() -> tuple[bytes, str]:
        conversation_id = str(uuid.uuid4())
        body = (prefix + conversation_id + '"}}').encode()
        raw = request_bytes("POST", "/webhook/", host, body, "application/json")
        return raw, conversation_id

    return make


def summarise(results: list[LoadResult], ok: int) -> dict[str, Any]:
    rps = [r.rps(ok) for r in results]
    latencies = [lat for r in results for lat in r.latencies(ok)]
    statuses: dict[str, int] = {}
    for r in results:
        for s in r.status:
            statuses[str(s)] = statuses.get(str(s), 0) + 1
    client_cpu = sum(r.cpu_seconds for r in results) / max(sum(r.seconds for r in results), 1e-9)
    return {
        "rps": report.median(rps),
        "rounds_rps": [round(x, 1) for x in rps],
        "p50_ms": report.percentile(latencies, 50),
        "p99_ms": report.percentile(latencies, 99),
        "statuses": statuses,
        "requests": sum(r.count() for r in results),
        "client_cpu_pct": round(100 * client_cpu, 1),
    }


def canary(stack: Stack, conn: audit.Conn, timeout: float) -> float:
    """One conversation, one message, one reply: proves web, broker and worker work."""
    import urllib.request

    conversation_id, message_id = str(uuid.uuid4()), str(uuid.uuid4())
    events = [
        {"type": "NEW_CONVERSATION", "timestamp": now_iso(), "data": {"id": conversation_id}},
        {
            "type": "NEW_MESSAGE",
            "timestamp": now_iso(),
            "data": {"id": message_id, "conversation_id": conversation_id, "content": "canary"},
        },
    ]
    start = time.monotonic()
    for event in events:
        request = urllib.request.Request(
            f"{stack.base_url}/webhook/",
            data=json.dumps(event).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            if response.status not in (201, 202):
                raise BenchError(f"canary {event['type']} got HTTP {response.status}")
    while time.monotonic() - start < timeout:
        stack.check_alive()
        row = conn.execute(
            f"SELECT count(*) FROM {audit.MESSAGE}"
            " WHERE type = 'OUTBOUND' AND conversation_id = %s",
            [conversation_id],
        ).fetchone()
        if row and row[0]:
            return time.monotonic() - start
        time.sleep(0.2)
    raise BenchError(
        f"The canary message got no reply within {timeout:.0f} s: is the Celery worker running? "
        "See bench/results/logs/worker.log."
    )


def conversations_process(
    cfg: config.BenchConfig,
    stack: Stack,
    rate: float,
    records_path: Path,
    summary_path: Path,
    logs: Path,
) -> subprocess.Popen[bytes]:
    """The conversational load (locust, ``bench.conversations``) at ``rate`` req/s, started."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.conversations",
            "--host",
            stack.base_url,
            "--rate",
            f"{rate:.1f}",
            "--seconds",
            f"{cfg.seconds:g}",
            "--window",
            f"{cfg.window_s:g}",
            "--tolerance",
            f"{cfg.tolerance_s:g}",
            "--out",
            str(records_path),
            "--summary",
            str(summary_path),
        ],
        cwd=config.ROOT,
        stdout=(logs / "locust.log").open("wb"),
        stderr=subprocess.STDOUT,
    )


def wait_for_conversations(locust: subprocess.Popen[bytes], stack: Stack) -> None:
    """Until the locust run ends (checking the stack meanwhile); stopped on any error."""
    try:
        while locust.poll() is None:
            stack.check_alive()
            time.sleep(0.5)
    finally:
        if locust.poll() is None:
            locust.terminate()
            locust.wait(timeout=10)


def read_conversation_records(path: Path) -> list[tuple[float, float, str, int, str, str, str]]:
    records = []
    for line in path.read_text().splitlines():
        sent, latency, kind, status, message_id, conversation_id, accepted = line.split("\t")
        records.append(
            (float(sent), float(latency), kind, int(status), message_id, conversation_id, accepted)
        )
    return records


def run(cfg: config.BenchConfig, logs: Path) -> dict[str, Any]:
    started = datetime.now(UTC)
    origin = time.time()
    phases = Phases(origin)
    reset_database(cfg)
    with Stack(cfg, logs) as stack:
        log("migrating")
        stack.migrate()
        log(f"starting gunicorn, Celery worker and beat on port {stack.port} (logs in {logs})")
        stack.start()
        stack.wait_ready()
        web, worker = stack.pid("web"), stack.pid("worker")
        trees: dict[str, Callable[[], list[psutil.Process]]] = {
            "web": lambda: monitor.tree(web),
            "worker": lambda: monitor.tree(worker),
            "scheduler": lambda: monitor.tree(stack.pid("scheduler")),
        }
        sampler = monitor.RssSampler(trees=trees, interval=cfg.sample_seconds, origin=origin)
        sampler.start()
        conn = audit.connect(cfg.database_url)
        try:
            result = _phases(cfg, stack, conn, phases, trees, sampler, started, origin)
        finally:
            sampler.stop()
            conn.close()
    log("stack stopped")
    return result


def _phases(
    cfg: config.BenchConfig,
    stack: Stack,
    conn: audit.Conn,
    phases: Phases,
    trees: dict[str, Callable[[], list[psutil.Process]]],
    sampler: monitor.RssSampler,
    started: datetime,
    origin: float,
) -> dict[str, Any]:
    logs = stack.logs
    host, port = stack.host, stack.port
    hostport = f"{host}:{port}"
    canary_s = canary(stack, conn, timeout=cfg.window_s + 30)
    log(f"canary replied in {canary_s:.1f} s; the whole path works")

    me = psutil.Process()
    cpu_groups: dict[str, Callable[[], list[psutil.Process]]] = {
        **trees,
        "postgres": lambda: monitor.by_name("postgres", "postmaster"),
        "redis": lambda: monitor.by_name("redis-server"),
        "client": lambda: [me],
    }
    cpu: dict[str, list[dict[str, float]]] = {"healthz": [], "webhook": [], "conversations": []}
    accepted: set[str] = set()
    # Completion times, one list per measured run ("segment"), by kind of request.
    throughput: dict[str, list[list[float]]] = {
        "/healthz": [],
        "NEW_MESSAGE": [],
        "other webhook": [],
    }

    healthz = request_bytes("GET", "/healthz", hostport)
    run_closed_loop(
        host, port, lambda: (healthz, ""), connections=cfg.connections, seconds=WARMUP_SECONDS
    )

    log(f"opening {cfg.pool_conversations} conversations")
    t0 = time.time()
    pool_result = run_closed_loop(
        host,
        port,
        conversation_factory(hostport),
        connections=cfg.connections,
        total=cfg.pool_conversations,
    )
    phases.add("pool", t0, time.time())
    pool = pool_result.accepted_tags(201)
    throughput["other webhook"].append(pool_result.done_at)
    if len(pool) < cfg.pool_conversations * 0.99:
        raise BenchError(
            f"only {len(pool)} of {cfg.pool_conversations} NEW_CONVERSATION got 201 "
            f"(statuses: {sorted(set(pool_result.status))}); see bench/results/logs/web.log"
        )

    segment = cfg.saturation_seconds / cfg.rounds
    healthz_runs: list[LoadResult] = []
    webhook_runs: list[LoadResult] = []
    drains: list[float] = []
    new_groups = measured_messages = 0
    active: list[int] = []
    for n in range(cfg.rounds):
        log(f"round {n + 1}/{cfg.rounds}: /healthz saturation, {segment:g} s")
        meter = monitor.CpuMeter(cpu_groups)
        t0 = time.time()
        meter.start()
        res = run_closed_loop(
            host, port, lambda: (healthz, ""), connections=cfg.connections, seconds=segment
        )
        cpu["healthz"].append(meter.stop())
        phases.add(f"/healthz {n + 1}", t0, time.time())
        healthz_runs.append(res)
        throughput["/healthz"].append(res.done_at)

        log(f"round {n + 1}/{cfg.rounds}: NEW_MESSAGE saturation, {segment:g} s")
        warm, size = webhook_warmup(cfg, host, port, pool)
        accepted.update(warm.accepted_tags(202))
        throughput["NEW_MESSAGE"].append(warm.done_at)
        active.append(size)
        factory = webhook_factory(hostport, pool[:size])
        before = audit.counts(conn)
        meter = monitor.CpuMeter(cpu_groups)
        t0 = time.time()
        meter.start()
        res = run_closed_loop(host, port, factory, connections=cfg.connections, seconds=segment)
        cpu["webhook"].append(meter.stop())
        after = audit.counts(conn)
        new_groups += after[1] - before[1]
        measured_messages += after[0] - before[0]
        phases.add(f"NEW_MESSAGE {n + 1}", t0, time.time())
        webhook_runs.append(res)
        accepted.update(res.accepted_tags(202))
        throughput["NEW_MESSAGE"].append(res.done_at)

        t0 = time.time()
        drain = audit.wait_until_settled(
            conn, minimum=cfg.window_s + 0.5, maximum=cfg.window_s + 120
        )
        groups_left, _ = audit.pending(conn)
        phases.add("replies", t0, time.time())
        drains.append(drain)
        log(
            f"round {n + 1}: {res.rps(202):,.0f} NEW_MESSAGE/s vs "
            f"{healthz_runs[-1].rps(200):,.0f} /healthz/s; "
            f"replies drained in {drain:.1f} s ({groups_left} groups left)"
        )

    hz = summarise(healthz_runs, 200)
    wh = summarise(webhook_runs, 202)
    saturation_groups = audit.pending(conn)

    # --- Half load: NEW_MESSAGE at half the saturation rate, open loop (P-2) ---
    half = half_load(cfg, stack, conn, phases, cpu_groups, pool, wh["rps"] / 2)
    accepted.update(half.pop("accepted"))
    throughput["NEW_MESSAGE"].append(half.pop("done_at"))

    # --- The conversational phase (locust), at a share of saturation ------------
    if cfg.conversations_rate:
        target = cfg.conversations_rate
        share = target / max(wh["rps"], 1e-9)
    else:
        share = cfg.conversations_share
        target = share * wh["rps"]
    expected = scenario.expected_conversations(target, cfg.seconds, cfg.window_s, cfg.tolerance_s)
    log(
        f"conversations: {target:,.0f} req/s ({share:.2f} of NEW_MESSAGE saturation) for "
        f"{cfg.seconds:g} s (locust; window {cfg.window_s:g} s): about {expected:,} conversations"
    )
    if expected < scenario.TARGET_CONVERSATIONS:
        needed = scenario.rate_for_conversations(
            scenario.TARGET_CONVERSATIONS, cfg.seconds, cfg.window_s, cfg.tolerance_s
        )
        log(
            f"  ({scenario.TARGET_CONVERSATIONS:,} conversations need {needed:,.0f} req/s in "
            f"{cfg.seconds:g} s, or about BENCH_SECONDS="
            f"{_seconds_for(target, cfg):.0f} at this rate)"
        )
    records_path = cfg.results / "conversations.tsv"
    summary_path = cfg.results / "conversations.json"
    phase_start = datetime.now(UTC)
    rss_start = sampler.sample()
    t0 = time.time()
    locust = conversations_process(cfg, stack, target, records_path, summary_path, logs)
    # The locust process has exited when the meter stops: its CPU comes from its summary.
    meter = monitor.CpuMeter({k: v for k, v in cpu_groups.items() if k != "client"})
    meter.start()
    wait_for_conversations(locust, stack)
    cpu["conversations"].append(meter.stop())
    phase_end_time = time.time()
    rss_end = sampler.sample()
    phases.add("conversations", t0, phase_end_time)
    if locust.returncode != 0:
        raise BenchError(f"the locust run failed; see {logs / 'locust.log'}")
    records = read_conversation_records(records_path)
    conv_summary = json.loads(summary_path.read_text())
    locust_wall = max(conv_summary["ended_at"] - conv_summary["started_at"], 1e-9)
    cpu["conversations"][-1]["client"] = round(100 * conv_summary["cpu_seconds"] / locust_wall, 1)
    phase_end = datetime.now(UTC)
    conversation_done: dict[str, list[float]] = {"NEW_MESSAGE": [], "other webhook": []}
    for sent, latency, kind, status, message_id, _, _ in records:
        if status == 202 and message_id:
            accepted.add(message_id)
        key = "NEW_MESSAGE" if kind in "MR" else "other webhook"
        conversation_done[key].append(sent + latency / 1000)
    for key, done in conversation_done.items():
        throughput[key].append(sorted(done))
    msg_lat = [r[1] for r in records if r[2] == "M" and r[3] == 202]
    all_lat = [r[1] for r in records if r[3] in (200, 201, 202)]
    errors = sum(
        1 for r in records if r[3] != {"C": 201, "M": 202, "R": 202, "X": 200}.get(r[2], r[3])
    )
    kinds: dict[str, int] = {}
    for r in records:
        kinds[r[2]] = kinds.get(r[2], 0) + 1
    # The rate once every user has started, up to the deadline.
    steady_from = conv_summary["started_at"] + conv_summary["stagger_s"]
    steady_to = conv_summary["started_at"] + cfg.seconds
    steady = sum(1 for r in records if steady_from <= r[0] < steady_to)
    conversations_rps = steady / max(steady_to - steady_from, 1e-9)

    # --- Settle and audit -------------------------------------------------------
    log("load stopped; waiting for the window plus a margin, then auditing")
    t0 = time.time()
    settle = audit.wait_until_settled(
        conn, minimum=cfg.window_s + 2.0, maximum=cfg.window_s + cfg.tolerance_s + 60
    )
    phases.add("settle", t0, time.time())
    delays = audit.reply_delays(conn, since=phase_start, until=phase_end)
    window_delays = [d.delay_s for d in delays if d.cause == "window"]
    close_delays = [d.delay_s for d in delays if d.cause == "close"]
    result_audit = audit.audit(conn, accepted, cfg.tolerance_s)

    # --- Report -------------------------------------------------------------------
    rss_series = sampler.series
    phase_rss = [p for p in rss_series if rss_start["t"] <= p["t"] <= rss_end["t"]]
    slope = _slope([p["t"] for p in phase_rss], [p["web"] + p["worker"] for p in phase_rss])
    window = cfg.window_s
    ratio = wh["rps"] / hz["rps"] if hz["rps"] else float("nan")
    half_p99 = half["p99_ms"]
    d_p99 = report.percentile(window_delays, 99)
    d_min = min(window_delays) if window_delays else float("nan")
    result: dict[str, Any] = {
        "healthz_rps": report.rnd(hz["rps"]),
        "webhook_rps": report.rnd(wh["rps"]),
        "webhook_p50_ms": report.rnd(wh["p50_ms"], 2),
        "webhook_p99_ms": report.rnd(wh["p99_ms"], 2),
        "webhook_to_healthz_ratio": report.rnd(ratio, 3),
        "half_load_target_rps": report.rnd(half["target_rps"]),
        "half_load_rps": report.rnd(half["rps"]),
        "half_load_p50_ms": report.rnd(half["p50_ms"], 2),
        "half_load_p99_ms": report.rnd(half_p99, 2),
        "half_load_errors": half["errors"],
        "conversations_share": round(share, 3),
        "conversations_target_rps": report.rnd(target),
        "conversations_rps": report.rnd(conversations_rps),
        "conversations_played": len({r[5] for r in records}),
        "conversations_p50_ms": report.rnd(report.percentile(msg_lat, 50), 2),
        "conversations_p99_ms": report.rnd(report.percentile(msg_lat, 99), 2),
        "conversations_all_p99_ms": report.rnd(report.percentile(all_lat, 99), 2),
        "conversations_errors": errors,
        "reply_delay_p50_s": report.rnd(report.percentile(window_delays, 50), 3),
        "reply_delay_p99_s": report.rnd(d_p99, 3),
        "reply_delay_max_s": report.rnd(max(window_delays) if window_delays else float("nan"), 3),
        "reply_delay_min_s": report.rnd(d_min, 3),
        "reply_delay_groups": len(window_delays),
        "reply_delay_on_close_max_s": report.rnd(max(close_delays), 3) if close_delays else None,
        "reply_delay_on_close_groups": len(close_delays),
        "lost": result_audit.lost,
        "duplicated": result_audit.duplicated,
        "messages": result_audit.messages,
        "groups": result_audit.groups,
        "conversations": result_audit.conversations,
        "window_s": window,
        "orphan_tolerance_s": cfg.tolerance_s,
        "rss_start_mb": report.rnd(rss_start["web"] + rss_start["worker"]),
        "rss_end_mb": report.rnd(rss_end["web"] + rss_end["worker"]),
        "rss_slope_mb_per_min": report.rnd(slope * 60, 2),
        "rss_web_start_mb": rss_start["web"],
        "rss_web_end_mb": rss_end["web"],
        "rss_worker_start_mb": rss_start["worker"],
        "rss_worker_end_mb": rss_end["worker"],
        "new_conversation_rps": report.rnd(pool_result.rps(201)),
        "targets": {
            "ratio": ratio >= 0.20,
            "half_load_p99": half_p99 < 50.0,
            "reply_delay_p99": d_p99 <= window + 1.0,
            "reply_delay_min": d_min >= window,
            "lost": result_audit.lost == 0,
            "duplicated": result_audit.duplicated == 0,
        },
        "audit": {
            "accepted": result_audit.accepted,
            "replies": result_audit.replies,
            "lost_messages": result_audit.lost_messages,
            "lost_groups": result_audit.lost_groups,
            "duplicated_groups": result_audit.duplicated_groups,
            "duplicated_messages": result_audit.duplicated_messages,
            "ungrouped_messages": result_audit.ungrouped,
            "reply_content_mismatch": result_audit.reply_mismatch,
            "orphans_adopted": result_audit.orphans_adopted,
            "orphans_expired": result_audit.orphans_expired,
            "stored_without_202": result_audit.unacknowledged,
            "failed_groups": result_audit.failed_groups,
            "failed_messages": result_audit.failed_messages,
            "settle_s": round(settle, 1),
        },
        "saturation": {
            "connections": cfg.connections,
            "rounds": cfg.rounds,
            "seconds_per_round": segment,
            "pool_conversations": len(pool),
            "healthz": {**_rounded(hz), "cpu_pct": _mean_cpu(cpu["healthz"])},
            "webhook": {
                **_rounded(wh),
                "cpu_pct": _mean_cpu(cpu["webhook"]),
                "conversations_used": active,
                "new_group_share": report.rnd(new_groups / max(measured_messages, 1), 3),
            },
            "reply_drain_s": [round(d, 1) for d in drains],
            "groups_pending_after": saturation_groups[0],
        },
        "half_load": _rounded(half),
        "conversational": {
            **conv_summary,
            "requests": len(records),
            "conversations": len({r[5] for r in records}),
            "by_kind": kinds,
            "cpu_pct": _mean_cpu(cpu["conversations"]),
        },
        "rss_series": rss_series,
        "config": {
            "seconds": cfg.seconds,
            "saturation_seconds": cfg.saturation_seconds,
            "sample_seconds": cfg.sample_seconds,
            "gunicorn_workers": len(monitor.tree(stack.pid("web"))) - 1,
            "half_load_seconds": cfg.half_load_seconds,
            "celery_concurrency": cfg.worker_concurrency,
        },
        **run_record(started, origin),
    }
    report.write_json(cfg.results / "core.json", result)
    throughput_series = {
        k: [report.per_second(seg, origin) for seg in segments]
        for k, segments in throughput.items()
    }
    report.write_png(
        cfg.results / "core.png",
        result=result,
        delays=window_delays,
        throughput=throughput_series,
        phases=phases.spans,
        rss=rss_series,
    )
    log(f"wrote {cfg.results / 'core.json'} and {cfg.results / 'core.png'}")
    return result


def table(result: dict[str, Any]) -> str:
    return report.table(result)


def half_load(
    cfg: config.BenchConfig,
    stack: Stack,
    conn: audit.Conn,
    phases: Phases,
    cpu_groups: dict[str, Callable[[], list[psutil.Process]]],
    pool: list[str],
    rate: float,
) -> dict[str, Any]:
    """NEW_MESSAGE at ``rate``, open loop, with the saturation phase's generator and mix.

    The requests arrive at a fixed rate whatever the server does, and each
    latency counts from its scheduled time. The first window + 1 s is a
    warm-up: the replies to the first groups fall due only then, and from then
    on the worker writes them alongside the intake, as in steady traffic. The
    latencies and the rate are those of the requests scheduled after it.
    """
    warmup = cfg.window_s + 1.0
    seconds = warmup + cfg.half_load_seconds
    hostport = f"{stack.host}:{stack.port}"
    # Each conversation gets a message every PACE_SECONDS on average, as in saturation.
    size = int(min(len(pool), max(16, rate * PACE_SECONDS)))
    log(
        f"half load: NEW_MESSAGE at {rate:,.0f} req/s, open loop, for {seconds:g} s "
        f"({warmup:g} s warm-up)"
    )
    before = audit.counts(conn)
    meter = monitor.CpuMeter(cpu_groups)
    t0 = time.time()
    meter.start()
    res = run_open_loop(
        stack.host, stack.port, webhook_factory(hostport, pool[:size]), rate=rate, seconds=seconds
    )
    cpu_pct = meter.stop()
    after = audit.counts(conn)
    phases.add("half load", t0, time.time())
    steady_from = res.started_at + warmup
    steady = [
        (lat, status)
        for lat, status, done in zip(res.latency_ms, res.status, res.done_at, strict=True)
        if done - lat / 1000 >= steady_from
    ]
    latencies = [lat for lat, status in steady if status == 202]
    statuses: dict[str, int] = {}
    for _, status in steady:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    t1 = time.time()
    drain = audit.wait_until_settled(conn, minimum=cfg.window_s + 0.5, maximum=cfg.window_s + 120)
    phases.add("replies", t1, time.time())
    p99 = report.percentile(latencies, 99)
    log(
        f"half load: p50 {report.percentile(latencies, 50):.1f} ms, p99 {p99:.1f} ms; "
        f"replies drained in {drain:.1f} s"
    )
    return {
        "target_rps": rate,
        "rps": len(latencies) / cfg.half_load_seconds,
        "p50_ms": report.percentile(latencies, 50),
        "p99_ms": p99,
        "max_ms": max(latencies) if latencies else float("nan"),
        "errors": len(steady) - len(latencies),
        "statuses": statuses,
        "requests": len(steady),
        "warmup_s": warmup,
        "seconds": cfg.half_load_seconds,
        "conversations_used": size,
        "new_group_share": report.rnd((after[1] - before[1]) / max(after[0] - before[0], 1), 3),
        "cpu_pct": cpu_pct,
        "client_cpu_pct": round(100 * res.cpu_seconds / seconds, 1),
        "reply_drain_s": round(drain, 1),
        "accepted": res.accepted_tags(202),
        "done_at": res.done_at,
    }


def _seconds_for(rate: float, cfg: config.BenchConfig) -> float:
    """About how long a run at ``rate`` must be to play scenario.TARGET_CONVERSATIONS."""
    seconds = cfg.seconds
    for _ in range(20):
        played = scenario.expected_conversations(rate, seconds, cfg.window_s, cfg.tolerance_s)
        if played >= scenario.TARGET_CONVERSATIONS:
            break
        seconds *= 1.1
    return seconds


def _rounded(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: report.rnd(v, 2) if isinstance(v, float) else v for k, v in summary.items()}


def _mean_cpu(samples: list[dict[str, float]]) -> dict[str, float]:
    if not samples:
        return {}
    return {k: round(sum(s.get(k, 0.0) for s in samples) / len(samples), 1) for k in samples[0]}


def _slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over xs (per second); 0 with fewer than 2 points."""
    if len(xs) < 2:
        return 0.0
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0
