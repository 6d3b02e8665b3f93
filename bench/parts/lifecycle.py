"""The lifecycle part: what the outbox costs the hot path, and how fast the exporter runs.

1. Fresh database, the production stack (gunicorn, Celery worker and beat),
   a canary, a pool of open conversations, as in the core part. The
   scheduler's export is pushed out of the way (``ANALYTICS_EXPORT_SECONDS``
   a day) so that step 4 measures it alone.
2. Saturation in interleaved rounds: ``/healthz``, then NEW_MESSAGE as
   shipped, with the outbox's INSERT taken out (``parley_outbox_append``, the
   one function the hot paths call to write an event, replaced by an empty
   one for that segment and put back after), and without the lifecycle's
   index on conversations (dropped for that segment, built again after); each
   round starts with the next variant, so the machine's drift hits all alike.
   Each segment meters the CPU of the web workers and of PostgreSQL, so each
   piece's cost per message is measured directly as well as in throughput.
3. Between segments the replies drain, as in the core part.
4. The same variants in process (``services.message_ingest`` in a loop,
   blocks interleaved): the CPU of the Python process and of its PostgreSQL
   backend per message, which the machine's other work hardly moves.
5. The exporter: ``analytics_export()`` in a fresh process over everything
   the outbox now holds, to the folder and then (when moto is installed) to
   an S3 bucket on moto's server: events per second, process start excluded.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from bench import audit, config, monitor, report
from bench.common import command, git_commit, log, machine
from bench.loadgen import LoadResult, request_bytes, run_closed_loop
from bench.parts.core import canary, conversation_factory, webhook_factory, webhook_warmup
from bench.stack import BenchError, Stack, reset_database

NAME = "lifecycle"
# The exporter is measured over at least this many events.
EXPORT_EVENTS = 100_000

# The hot paths' one way to write an event (outbox migration 0002), and the
# same signature doing nothing: the "without the outbox" variant.
_APPEND_SIGNATURE = (
    "parley_outbox_append(p_type text, p_occurred_at timestamptz, p_tenant_id uuid, "
    "p_subject text, p_data jsonb)"
)
_APPEND_AS_SHIPPED = f"""
CREATE OR REPLACE FUNCTION {_APPEND_SIGNATURE} RETURNS void LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    INSERT INTO outbox_outboxevent (type, occurred_at, tenant_id, subject, data)
    VALUES (p_type, p_occurred_at, p_tenant_id, p_subject, p_data);
    PERFORM parley_ring('parley_outbox');
END
$$"""
_APPEND_NOTHING = f"""
CREATE OR REPLACE FUNCTION {_APPEND_SIGNATURE} RETURNS void LANGUAGE plpgsql VOLATILE AS $$
BEGIN
END
$$"""

# Run in a fresh process with the stack's environment: the exporter alone.
_EXPORT_SCRIPT = """
import json, time, django
django.setup()
from parley.analytics.services import analytics_export
started = time.perf_counter()
report = analytics_export()
elapsed = time.perf_counter() - started
print(json.dumps({"seconds": elapsed, "batches": report.batches, "events": report.events,
                  "exported": report.exported, "files": report.files}))
"""
_EXPORT_RESET = (
    "DELETE FROM analytics_exportbatch; "
    "UPDATE outbox_outboxcursor SET txid = -1, event_id = -1 WHERE name = 'analytics'"
)


def run(cfg: config.BenchConfig, logs: Path) -> dict[str, Any]:
    started = datetime.now(UTC)
    origin = time.time()
    reset_database(cfg)
    env = {"ANALYTICS_EXPORT_SECONDS": "86400"}
    with Stack(cfg, logs, env=env) as stack:
        log("migrating")
        stack.migrate()
        log(f"starting gunicorn, Celery worker and beat on port {stack.port}")
        stack.start()
        stack.wait_ready()
        conn = audit.connect(cfg.database_url)
        try:
            canary(stack, conn, timeout=cfg.window_s + 30)
            saturation = _saturation(cfg, stack, conn)
            direct = _direct(stack, logs)
            exporter = _exporter(stack, conn, logs)
        finally:
            conn.execute(_APPEND_AS_SHIPPED)
            conn.close()
    log("stack stopped")
    result = {
        **saturation,
        "direct": direct,
        **exporter,
        "machine": machine(),
        "git_commit": git_commit(),
        "command": command(),
        "started_at": started.isoformat(timespec="seconds"),
        "duration_s": round(time.time() - origin, 1),
    }
    report.write_json(cfg.results / "lifecycle.json", result)
    return result


# The lifecycle's index on conversations (conversations migration 0006): every
# NEW_MESSAGE moves updated_at, so it adds one index entry per message.
_ACTIVITY_INDEX_DROP = "DROP INDEX conversation_open_activity_idx"
_ACTIVITY_INDEX_CREATE = (
    "CREATE INDEX IF NOT EXISTS conversation_open_activity_idx "
    "ON conversations_conversation (tenant_id, updated_at) WHERE status = 'OPEN'"
)

# The measured variants of NEW_MESSAGE: (statements before, statements after).
VARIANTS: dict[str, tuple[list[str], list[str]]] = {
    "shipped": ([], []),
    "no_outbox": ([_APPEND_NOTHING], [_APPEND_AS_SHIPPED]),
    "no_index": ([_ACTIVITY_INDEX_DROP], [_ACTIVITY_INDEX_CREATE]),
}


@contextmanager
def _variant(conn: audit.Conn, name: str) -> Iterator[None]:
    before, after = VARIANTS[name]
    for statement in before:
        conn.execute(statement)
    try:
        yield
    finally:
        for statement in after:
            conn.execute(statement)


def _saturation(cfg: config.BenchConfig, stack: Stack, conn: audit.Conn) -> dict[str, Any]:
    host, port = stack.host, stack.port
    hostport = f"{host}:{port}"
    me = psutil.Process()
    web = stack.pid("web")
    groups: dict[str, Callable[[], list[psutil.Process]]] = {
        "web": lambda: monitor.tree(web),
        "postgres": lambda: monitor.by_name("postgres", "postmaster"),
        "client": lambda: [me],
    }
    healthz = request_bytes("GET", "/healthz", hostport)
    run_closed_loop(host, port, lambda: (healthz, ""), connections=cfg.connections, seconds=1)
    log(f"opening {cfg.pool_conversations} conversations")
    pool = run_closed_loop(
        host,
        port,
        conversation_factory(hostport),
        connections=cfg.connections,
        total=cfg.pool_conversations,
    ).accepted_tags(201)
    if len(pool) < cfg.pool_conversations * 0.99:
        raise BenchError("NEW_CONVERSATION failed; see bench/results/logs/web.log")

    segment = cfg.saturation_seconds / cfg.rounds
    names = list(VARIANTS)
    runs: dict[str, list[LoadResult]] = {"healthz": [], **{name: [] for name in names}}
    cpu_ms: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    for n in range(cfg.rounds):
        log(f"round {n + 1}/{cfg.rounds}: /healthz, {segment:g} s")
        runs["healthz"].append(
            run_closed_loop(
                host, port, lambda: (healthz, ""), connections=cfg.connections, seconds=segment
            )
        )
        # Each round starts with the next variant, so none is always first.
        for name in names[n % len(names) :] + names[: n % len(names)]:
            log(f"round {n + 1}/{cfg.rounds}: NEW_MESSAGE, {name}, {segment:g} s")
            with _variant(conn, name):
                _, size = webhook_warmup(cfg, host, port, pool)
                factory = webhook_factory(hostport, pool[:size])
                meter = monitor.CpuMeter(groups)
                t0 = time.monotonic()
                meter.start()
                res = run_closed_loop(
                    host, port, factory, connections=cfg.connections, seconds=segment
                )
                usage = meter.stop()
                wall = time.monotonic() - t0
            runs[name].append(res)
            messages = max(res.count(202), 1)
            # Percent of a core over the segment, as milliseconds per message.
            cpu_ms[name].append({k: 10.0 * pct * wall / messages for k, pct in usage.items()})
            audit.wait_until_settled(conn, minimum=cfg.window_s + 0.5, maximum=cfg.window_s + 120)

    hz = report.median([r.rps(200) for r in runs["healthz"]])
    rps = {name: report.median([r.rps(202) for r in runs[name]]) for name in names}

    def per_message(name: str, group: str) -> float:
        return report.median([c[group] for c in cpu_ms[name]])

    def cost(of: str) -> dict[str, float | None]:
        """CPU per message the shipped code spends on ``of``'s missing piece."""
        return {
            g: report.rnd(per_message("shipped", g) - per_message(of, g), 3)
            for g in ("web", "postgres")
        }

    return {
        "healthz_rps": report.rnd(hz),
        "webhook_rps": report.rnd(rps["shipped"]),
        "webhook_to_healthz_ratio": report.rnd(rps["shipped"] / hz, 3),
        "variants": {
            name: {
                "webhook_rps": report.rnd(rps[name]),
                "webhook_to_healthz_ratio": report.rnd(rps[name] / hz, 3),
                "cpu_ms_per_message": {
                    g: report.rnd(per_message(name, g), 3) for g in ("web", "postgres")
                },
                "rounds_rps": [report.rnd(r.rps(202)) for r in runs[name]],
            }
            for name in names
        },
        "outbox_throughput_cost_pct": report.rnd(100 * (1 - rps["shipped"] / rps["no_outbox"]), 1),
        "outbox_cpu_ms_per_message": cost("no_outbox"),
        "index_throughput_cost_pct": report.rnd(100 * (1 - rps["shipped"] / rps["no_index"]), 1),
        "index_cpu_ms_per_message": cost("no_index"),
        "healthz_rounds_rps": [report.rnd(r.rps(200)) for r in runs["healthz"]],
        "saturation": {
            "connections": cfg.connections,
            "rounds": cfg.rounds,
            "seconds_per_segment": segment,
            "pool_conversations": len(pool),
        },
    }


# In a fresh process with the stack's environment: NEW_MESSAGE through the
# service in a loop, in blocks that alternate the variants, timing this
# process's CPU and its PostgreSQL backend's. CPU time, not throughput, so
# other work on the machine matters little.
_DIRECT_SCRIPT = """
import json, sys, time, uuid, django
django.setup()
import psutil
from django.db import connection
from django.utils import timezone
from parley.conversations import services
variants = json.loads(sys.argv[1])
rounds, block = int(sys.argv[2]), int(sys.argv[3])
pool = [uuid.uuid4() for _ in range(500)]
for conversation_id in pool:
    services.conversation_open(conversation_id=conversation_id)
with connection.cursor() as cursor:
    cursor.execute("SELECT pg_backend_pid()")
    backend = psutil.Process(cursor.fetchone()[0])
def cpu(process):
    times = process.cpu_times()
    return times.user + times.system
def ingest(n):
    for i in range(n):
        services.message_ingest(message_id=uuid.uuid4(), conversation_id=pool[i % len(pool)],
                                content="Is the flat near the station still free?",
                                timestamp=timezone.now())
ingest(block)  # warm: prepared statements, caches
me, names, out = psutil.Process(), list(variants), {name: [] for name in variants}
for r in range(rounds):
    for name in names[r % len(names):] + names[:r % len(names)]:
        before, after = variants[name]
        with connection.cursor() as cursor:
            for statement in before:
                cursor.execute(statement)
        py, pg = cpu(me), cpu(backend)
        ingest(block)
        out[name].append({"python": 1000 * (cpu(me) - py) / block,
                          "postgres": 1000 * (cpu(backend) - pg) / block})
        with connection.cursor() as cursor:
            for statement in after:
                cursor.execute(statement)
print(json.dumps(out))
"""
DIRECT_ROUNDS, DIRECT_BLOCK = 9, 1000


def _direct(stack: Stack, logs: Path) -> dict[str, Any]:
    log(f"direct: NEW_MESSAGE in process, {DIRECT_ROUNDS} rounds of {DIRECT_BLOCK} per variant")
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            _DIRECT_SCRIPT,
            json.dumps(VARIANTS),
            str(DIRECT_ROUNDS),
            str(DIRECT_BLOCK),
        ],
        cwd=config.ROOT,
        env={**stack.env, "DJANGO_SETTINGS_MODULE": "config.settings", "LOG_LEVEL": "WARNING"},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    (logs / "direct.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise BenchError(f"the in-process measurement failed; see {logs / 'direct.log'}")
    samples = json.loads(done.stdout.strip().splitlines()[-1])
    per_message = {
        name: {
            side: report.rnd(report.median([s[side] for s in runs]), 4)
            for side in ("python", "postgres")
        }
        for name, runs in samples.items()
    }

    def cost(of: str) -> dict[str, float | None]:
        return {
            side: report.rnd((per_message["shipped"][side] or 0) - (per_message[of][side] or 0), 4)
            for side in ("python", "postgres")
        }

    return {
        "cpu_ms_per_message": per_message,
        "outbox_cpu_ms_per_message": cost("no_outbox"),
        "index_cpu_ms_per_message": cost("no_index"),
        "rounds": DIRECT_ROUNDS,
        "block": DIRECT_BLOCK,
    }


def _exporter(stack: Stack, conn: audit.Conn, logs: Path) -> dict[str, Any]:
    result: dict[str, Any] = {}
    # Enough events for a steady figure: the run's own, copied (a day later,
    # so that they are new facts for the export) until there are EXPORT_EVENTS.
    while (count := _outbox_count(conn)) < EXPORT_EVENTS:
        conn.execute(
            "INSERT INTO outbox_outboxevent (type, occurred_at, tenant_id, subject, data) "
            "SELECT type, occurred_at + interval '1 day', tenant_id, subject, data "
            "FROM outbox_outboxevent ORDER BY id LIMIT %s",
            [EXPORT_EVENTS - count],
        )
    result["outbox_events"] = _outbox_count(conn)
    log(f"exporter: {result['outbox_events']:,} outbox events to the folder")
    result["export_folder"] = _export(stack, conn, logs, {})
    try:
        import boto3
    except ImportError:
        log("exporter: no boto3/moto in this environment; the bucket run is skipped")
        return result
    moto = Path(sys.executable).parent / "moto_server"
    if not moto.exists():
        return result
    port = _free_port()
    server = subprocess.Popen(
        [str(moto), "-H", "127.0.0.1", "-p", str(port)],
        stdout=(logs / "moto.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        endpoint = f"http://127.0.0.1:{port}"
        aws = {
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": endpoint,
        }
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise BenchError("moto_server did not start") from None
                time.sleep(0.1)
        boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
            region_name="us-east-1",
        ).create_bucket(Bucket="bench")
        conn.execute(_EXPORT_RESET)
        log("exporter: the same events to an S3 bucket on moto's server")
        result["export_bucket"] = _export(
            stack, conn, logs, {"OBJECT_STORE_URL": "s3://bench/lake", **aws}
        )
    finally:
        server.terminate()
        server.wait(timeout=10)
    return result


def _outbox_count(conn: audit.Conn) -> int:
    row = conn.execute("SELECT count(*) FROM outbox_outboxevent").fetchone()
    return int(row[0]) if row else 0


def _export(stack: Stack, conn: audit.Conn, logs: Path, env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", _EXPORT_SCRIPT],
        cwd=config.ROOT,
        env={**stack.env, "DJANGO_SETTINGS_MODULE": "config.settings", **env},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    (logs / "exporter.log").open("a").write(done.stdout + done.stderr)
    if done.returncode != 0:
        raise BenchError(f"the exporter failed; see {logs / 'exporter.log'}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    expected = _outbox_count(conn)
    if figures["events"] < expected:
        # Readers take only events older than every running transaction of the
        # cluster (parley.outbox.models): one left open elsewhere holds them back.
        oldest = conn.execute(
            "SELECT datname, now() - xact_start FROM pg_stat_activity "
            "WHERE backend_xid IS NOT NULL ORDER BY xact_start LIMIT 1"
        ).fetchone()
        raise BenchError(
            f"the exporter read {figures['events']:,} of {expected:,} events: a transaction "
            f"open elsewhere on the server holds the outbox back ({oldest}); run again"
        )
    figures["events_per_s"] = report.rnd(figures["events"] / max(figures["seconds"], 1e-9))
    figures["seconds"] = report.rnd(figures["seconds"], 2)
    log(f"exporter: {figures['events']:,} events in {figures['seconds']} s")
    return figures


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def table(result: dict[str, Any]) -> str:
    v = result["variants"]
    labels = {
        "shipped": "as shipped",
        "no_outbox": "without the outbox INSERT",
        "no_index": "without conversation_open_activity_idx",
    }
    lines = [
        f"{'figure':<66} {'value':>16}",
        f"{'/healthz saturation (req/s)':<66} {result['healthz_rps']:>16,}",
    ]
    for name, label in labels.items():
        cpu = v[name]["cpu_ms_per_message"]
        lines.append(
            f"{'NEW_MESSAGE ' + label + ' (req/s, ratio)':<66} "
            f"{v[name]['webhook_rps']:>9,} {v[name]['webhook_to_healthz_ratio']:>6}"
        )
        lines.append(
            f"{'  CPU per message, web / PostgreSQL (ms)':<66} {cpu['web']:>9} {cpu['postgres']:>6}"
        )
    direct = result["direct"]
    for key, label in (("outbox", "the outbox"), ("index", "the activity index")):
        ms = direct[f"{key}_cpu_ms_per_message"]
        lines.append(
            f"{label + ': CPU per message in process, Python / PostgreSQL (ms)':<66} "
            f"{ms['python']:>9} {ms['postgres']:>6}"
        )
    lines += [
        f"{'the outbox: throughput cost (%)':<66} {result['outbox_throughput_cost_pct']:>16}",
        f"{'the activity index: throughput cost (%)':<66} "
        f"{result['index_throughput_cost_pct']:>16}",
    ]
    for key, label in (("export_folder", "folder"), ("export_bucket", "S3 (moto)")):
        if key in result:
            lines.append(
                f"{'exporter to the ' + label + ' (events/s)':<66} "
                f"{result[key]['events_per_s']:>16,}"
            )
    return "\n".join(lines)
