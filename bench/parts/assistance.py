"""The assistance part: POST /assistance-requests/ to a fake Slack (SPEC A-13).

1. Fresh database, migrate, start a fake Slack (``tests.receiver``, a process
   of its own that logs the key of every request it receives), point the
   seeded ``sales-slack`` channel at it and lift its rate limit (Slack's 1 a
   second would measure Slack's limit, not Parley), start gunicorn, the
   Celery worker and beat; one canary request must reach the fake.
2. Saturation, in interleaved rounds: ``/healthz``, then POST
   ``/assistance-requests/`` (topic ``sales``, a fresh description each),
   then wait until every request is SENT. The ratio of the two medians is
   A-13's throughput figure.
3. Half load, open loop: POSTs at half the saturation rate; from POST to SENT
   (``sent_at - created_at`` of the requests of the measured span) p50/p99.
4. The audit at the fake: every accepted request stored, SENT and received
   (0 lost), and no key received twice (0 sent twice).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import audit, config, report
from bench.common import command, git_commit, log, machine
from bench.loadgen import LoadResult, request_bytes, run_closed_loop, run_open_loop
from bench.parts.core import summarise
from bench.stack import BenchError, Stack, free_port, reset_database

NAME = "assistance"
DELIVERY = "assistance_delivery"
WARMUP_SECONDS = 1.0
DRAIN_SECONDS = 120.0


def request_factory(host: str) -> Any:
    counter = [0]
    head = (
        f"POST /assistance-requests/ HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
    ).encode()

    def make() -> tuple[bytes, str]:
        counter[0] += 1
        body = (
            '{"topic":"sales","description":"Customer wants 40 seats, request '
            f'{counter[0]}.","metadata":{{"plan":"pro"}}}}'
        ).encode()
        return head + b"Content-Length: %d\r\n\r\n" % len(body) + body, str(counter[0])

    return make


def live_count(conn: audit.Conn) -> int:
    row = conn.execute(
        f"SELECT count(*) FROM {DELIVERY} WHERE status IN ('PENDING', 'QUEUED')"
    ).fetchone()
    assert row is not None
    return int(row[0])


def drain(conn: audit.Conn, timeout: float = DRAIN_SECONDS) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout and live_count(conn):
        time.sleep(0.1)
    return time.monotonic() - start


def received_keys(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [line.split("\t", 1)[0] for line in path.read_text().splitlines() if line]


def run(cfg: config.BenchConfig, logs: Path) -> dict[str, Any]:
    started = datetime.now(UTC)
    origin = time.time()
    reset_database(cfg)
    fake_port = free_port()
    fake_log = logs / "fake-slack.tsv"
    fake_log.unlink(missing_ok=True)
    fake = subprocess.Popen(
        [sys.executable, "-m", "tests.receiver", "--port", str(fake_port), "--out", str(fake_log)],
        cwd=config.ROOT,
        stdout=(logs / "fake-slack.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    env = {"ASSISTANCE_SLACK_WEBHOOK_URL": f"http://127.0.0.1:{fake_port}/services/T0/B0/bench"}
    try:
        with Stack(cfg, logs, env=env) as stack:
            log("migrating")
            stack.migrate()
            conn = audit.connect(cfg.database_url)
            try:
                conn.execute(
                    "UPDATE assistance_channel SET rate_per_second = 0 WHERE name = 'sales-slack'"
                )
                log(f"starting gunicorn, Celery worker and beat on port {stack.port}")
                stack.start()
                stack.wait_ready()
                result = _phases(cfg, stack, conn, fake_log)
            finally:
                conn.close()
    finally:
        fake.send_signal(signal.SIGTERM)
        fake.wait(timeout=10)
    result.update(
        machine=machine(),
        git_commit=git_commit(),
        command=command(),
        started_at=started.isoformat(timespec="seconds"),
        duration_s=round(time.time() - origin, 1),
    )
    report.write_json(cfg.results / "assistance.json", result)
    log(f"wrote {cfg.results / 'assistance.json'}")
    return result


def _phases(
    cfg: config.BenchConfig, stack: Stack, conn: audit.Conn, fake_log: Path
) -> dict[str, Any]:
    host, port = stack.host, stack.port
    hostport = f"{host}:{port}"
    accepted = 0

    # The canary: one request through web, broker, worker and the fake.
    canary = run_closed_loop(host, port, request_factory(hostport), connections=1, total=1)
    if canary.count(202) != 1:
        raise BenchError(f"the canary POST got {canary.status}; see bench/results/logs/web.log")
    accepted += 1
    if drain(conn, 30) >= 30 or not received_keys(fake_log):
        raise BenchError("the canary request never reached the fake Slack; see worker.log")
    log("canary request SENT; the whole path works")

    healthz = request_bytes("GET", "/healthz", hostport)
    factory = request_factory(hostport)
    segment = cfg.saturation_seconds / cfg.rounds
    healthz_runs: list[LoadResult] = []
    post_runs: list[LoadResult] = []
    drains: list[float] = []
    for n in range(cfg.rounds):
        log(f"round {n + 1}/{cfg.rounds}: /healthz saturation, {segment:g} s")
        run_closed_loop(
            host, port, lambda: (healthz, ""), connections=cfg.connections, seconds=WARMUP_SECONDS
        )
        healthz_runs.append(
            run_closed_loop(
                host, port, lambda: (healthz, ""), connections=cfg.connections, seconds=segment
            )
        )
        log(f"round {n + 1}/{cfg.rounds}: POST /assistance-requests/ saturation, {segment:g} s")
        warm = run_closed_loop(
            host, port, factory, connections=cfg.connections, seconds=WARMUP_SECONDS
        )
        res = run_closed_loop(host, port, factory, connections=cfg.connections, seconds=segment)
        post_runs.append(res)
        accepted += warm.count(202) + res.count(202)
        drains.append(drain(conn))
        log(
            f"round {n + 1}: {res.rps(202):,.0f} POST/s vs {healthz_runs[-1].rps(200):,.0f} "
            f"/healthz/s; all SENT after {drains[-1]:.1f} s"
        )
    hz = summarise(healthz_runs, 200)
    posts = summarise(post_runs, 202)

    # Half load: POST -> SENT.
    rate = posts["rps"] / 2
    warmup = 2.0
    log(f"half load: {rate:,.0f} POST/s, open loop, {warmup + cfg.half_load_seconds:g} s")
    half = run_open_loop(host, port, factory, rate=rate, seconds=warmup + cfg.half_load_seconds)
    accepted += half.count(202)
    half_drain = drain(conn)
    steady_from = datetime.fromtimestamp(half.started_at + warmup, UTC)
    steady_to = datetime.fromtimestamp(half.started_at + warmup + cfg.half_load_seconds, UTC)
    rows = conn.execute(
        f"SELECT EXTRACT(EPOCH FROM sent_at - created_at) FROM {DELIVERY}"
        " WHERE created_at >= %s AND created_at < %s AND sent_at IS NOT NULL",
        [steady_from, steady_to],
    ).fetchall()
    to_sent_ms = [1000 * float(r[0]) for r in rows]
    post_latency = [
        lat
        for lat, status, done in zip(half.latency_ms, half.status, half.done_at, strict=True)
        if status == 202 and done - lat / 1000 >= half.started_at + warmup
    ]

    # The audit at the fake.
    time.sleep(1.0)  # the fake's log lines of the last sends
    keys = received_keys(fake_log)
    row = conn.execute(
        f"SELECT count(*), count(*) FILTER (WHERE status = 'SENT') FROM {DELIVERY}"
        " WHERE purpose = 'assistance'"
    ).fetchone()
    assert row is not None
    stored, sent = int(row[0]), int(row[1])
    ids = {str(r[0]) for r in conn.execute(f"SELECT id FROM {DELIVERY}").fetchall()}
    unique = set(keys)
    lost = max(0, accepted - stored) + len(ids - unique)
    sent_twice = len(keys) - len(unique)
    ratio = posts["rps"] / hz["rps"] if hz["rps"] else float("nan")
    p99 = report.percentile(to_sent_ms, 99)
    return {
        "healthz_rps": report.rnd(hz["rps"]),
        "post_rps": report.rnd(posts["rps"]),
        "post_to_healthz_ratio": report.rnd(ratio, 3),
        "post_p50_ms": report.rnd(posts["p50_ms"], 2),
        "post_p99_ms": report.rnd(posts["p99_ms"], 2),
        "half_load_rps": report.rnd(len(post_latency) / cfg.half_load_seconds),
        "half_load_post_p99_ms": report.rnd(report.percentile(post_latency, 99), 2),
        "post_to_sent_p50_ms": report.rnd(report.percentile(to_sent_ms, 50), 1),
        "post_to_sent_p99_ms": report.rnd(p99, 1),
        "post_to_sent_max_ms": report.rnd(max(to_sent_ms), 1) if to_sent_ms else None,
        "post_to_sent_requests": len(to_sent_ms),
        "accepted": accepted,
        "stored": stored,
        "sent": sent,
        "received": len(keys),
        "lost": lost,
        "sent_twice": sent_twice,
        "drain_s": [round(d, 1) for d in [*drains, half_drain]],
        "targets": {
            "ratio": ratio >= 0.2,
            "post_to_sent_p99": p99 < 1000.0,
            "lost": lost == 0,
            "sent_twice": sent_twice == 0,
        },
        "saturation": {
            "connections": cfg.connections,
            "rounds": cfg.rounds,
            "seconds_per_round": segment,
            "healthz": hz,
            "post": posts,
        },
    }


def table(result: dict[str, Any]) -> str:
    def verdict(key: str) -> str:
        return "PASS" if result["targets"][key] else "FAIL"

    lines = [
        f"POST /assistance-requests/ {result['post_rps']} req/s vs /healthz "
        f"{result['healthz_rps']} req/s: ratio {result['post_to_healthz_ratio']} "
        f"(target >= 0.2) {verdict('ratio')}",
        f"half load {result['half_load_rps']} req/s: POST p99 {result['half_load_post_p99_ms']} ms;"
        f" POST -> SENT p50 {result['post_to_sent_p50_ms']} ms, p99 "
        f"{result['post_to_sent_p99_ms']} ms (target < 1000) {verdict('post_to_sent_p99')}",
        f"audit at the fake: {result['accepted']} accepted, {result['stored']} stored, "
        f"{result['sent']} SENT, {result['received']} received; lost {result['lost']} "
        f"{verdict('lost')}, sent twice {result['sent_twice']} {verdict('sent_twice')}",
    ]
    return "\n".join(lines)
