"""The intake part: the queue consumer against the webhook (SPEC Q-10), in one run.

1. Fresh database and Redis databases; the production stack plus
   ``BENCH_INTAKE_CONSUMERS`` queue consumers (default 2; ``manage.py
   consume`` on Redis, 8 partitions shared by leases).
2. A pool of open conversations (NEW_CONVERSATION over HTTP).
3. NEW_MESSAGE saturation over HTTP (the rate to match), as the core part
   measures it.
4. Redis throughput: the consumers are paused (SIGSTOP), a backlog of
   NEW_MESSAGE events is published to their lists, and they resume: events
   applied per second, from the first commit to the last (inbox times).
5. Publish-to-applied latency at half the HTTP rate, open loop: each event's
   publish time against its inbox ``applied_at``.
6. The same throughput from RabbitMQ when it answers (the consumers are
   restarted on an AMQP URL; queues named for this run, deleted after).
7. The audit: every published event applied exactly once (one inbox row, one
   message), no dead letter. The consumer's RSS is sampled throughout.

Events are published with kombu directly, following the README's wire
contract, as a producer in any language would.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import uuid
import zlib
from pathlib import Path
from typing import Any

import psutil
import redis
from kombu import Connection, Exchange, Producer, Queue

from bench import audit, config, monitor, report
from bench.common import log, now_iso
from bench.loadgen import run_closed_loop
from bench.parts.core import conversation_factory, webhook_factory
from bench.stack import BenchError, Stack, reset_database

NAME = "intake"
QUEUE = "parley.events"
PARTITIONS = 8
# Consumer processes, as a deployment scales them (partitions are shared by
# leases); gunicorn runs 2 x cores workers on the HTTP side.
CONSUMERS = int(os.environ.get("BENCH_INTAKE_CONSUMERS", "") or 2)
# Short leases, so that the consumers share the partitions within seconds.
LEASE_SECONDS = 6
INBOX = "intake_inboxevent"
DEAD_LETTER = "intake_deadletter"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"
# At most this long for a backlog to drain, or the published events to apply.
DRAIN_TIMEOUT_S = 180.0


def _intake_redis_url(cfg: config.BenchConfig) -> str:
    """The Redis database two after the broker's: the bench's own, flushed at the start."""
    base, _, db = cfg.redis_url.rpartition("/")
    return f"{base}/{int(db) + 2}" if db.isdigit() else cfg.redis_url


def _message(conversation_id: str, event_id: str) -> bytes:
    return json.dumps(
        {
            "type": "NEW_MESSAGE",
            "timestamp": now_iso(),
            "data": {
                "id": event_id,
                "conversation_id": conversation_id,
                "content": "Hi, I would like information about renting an apartment.",
            },
        }
    ).encode()


class Publisher:
    """The wire contract of the README: Redis lists by crc32, or the AMQP hash exchange."""

    def __init__(self, url: str, queue: str) -> None:
        self.amqp = url.startswith("amqp")
        options = {"confirm_publish": True} if self.amqp else {}
        self.connection = Connection(url, transport_options=options)
        self.producer = Producer(self.connection.channel())
        if self.amqp:
            self.exchange = Exchange(queue, type="x-consistent-hash", durable=True)
            self.queues = [
                Queue(
                    f"{queue}.{n}",
                    exchange=self.exchange,
                    routing_key="1",
                    durable=True,
                    queue_arguments={"x-queue-type": "quorum", "x-single-active-consumer": True},
                )
                for n in range(PARTITIONS)
            ]
        else:
            self.exchange = Exchange(queue, type="direct", durable=True)
            self.queues = [
                Queue(f"{queue}.{n}", exchange=self.exchange, routing_key=f"{queue}.{n}")
                for n in range(PARTITIONS)
            ]
        for q in self.queues:
            q(self.producer.channel).declare()

    def publish(self, key: str, body: bytes) -> None:
        if self.amqp:
            routing_key = key
        else:
            routing_key = self.queues[zlib.crc32(key.encode()) % PARTITIONS].routing_key
        self.producer.publish(
            body,
            exchange=self.exchange,
            routing_key=routing_key,
            content_type="application/json",
            content_encoding="binary",
            delivery_mode=2,
        )

    def close(self) -> None:
        if self.amqp:
            for q in self.queues:
                q(self.producer.channel).delete()
        self.connection.release()


def _applied(conn: audit.Conn, ids: list[str]) -> dict[str, float]:
    """event id -> applied_at (epoch seconds) for those of ``ids`` in the inbox."""
    found: dict[str, float] = {}
    for start in range(0, len(ids), 5000):
        rows = conn.execute(
            f"SELECT event_id, extract(epoch FROM applied_at) FROM {INBOX}"
            " WHERE event_id = ANY(%s)",
            [ids[start : start + 5000]],
        ).fetchall()
        found.update({row[0]: float(row[1]) for row in rows})
    return found


def _wait_applied(conn: audit.Conn, stack: Stack, ids: list[str]) -> dict[str, float]:
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    keys = [f"NEW_MESSAGE:{i}" for i in ids]
    while True:
        stack.check_alive()
        count = conn.execute(
            f"SELECT count(*) FROM {INBOX} WHERE event_id = ANY(%s)", [keys]
        ).fetchone()
        if count and count[0] >= len(keys):
            return _applied(conn, keys)
        if time.monotonic() > deadline:
            raise BenchError(f"only {count[0] if count else 0} of {len(keys)} events applied")
        time.sleep(0.2)


def _throughput(
    stack: Stack, conn: audit.Conn, publisher: Publisher, pool: list[str], count: int
) -> dict[str, Any]:
    """Pause the consumers, publish a backlog, resume: events applied per second."""
    for name in stack.consumer_names():
        stack.signal(name, signal.SIGSTOP)
    ids = [str(uuid.uuid4()) for _ in range(count)]
    t0 = time.monotonic()
    try:
        for n, event_id in enumerate(ids):
            conversation_id = pool[n % len(pool)]
            publisher.publish(conversation_id, _message(conversation_id, event_id))
    finally:
        for name in stack.consumer_names():
            stack.signal(name, signal.SIGCONT)
    publish_s = time.monotonic() - t0
    applied = _wait_applied(conn, stack, ids)
    span = max(applied.values()) - min(applied.values())
    return {
        "events": count,
        "events_per_s": count / max(span, 1e-9),
        "drain_s": round(span, 2),
        "publish_per_s": round(count / max(publish_s, 1e-9), 1),
        "ids": ids,
    }


def _latency(
    stack: Stack,
    conn: audit.Conn,
    publisher: Publisher,
    pool: list[str],
    rate: float,
    seconds: float,
) -> dict[str, Any]:
    """Open loop at ``rate``: publish-to-applied per event (inbox applied_at)."""
    published: dict[str, float] = {}
    start = time.monotonic()
    n = 0
    while (elapsed := time.monotonic() - start) < seconds:
        due = start + n / rate
        if due > time.monotonic():
            time.sleep(due - time.monotonic())
        event_id = str(uuid.uuid4())
        conversation_id = pool[n % len(pool)]
        published[event_id] = time.time()
        publisher.publish(conversation_id, _message(conversation_id, event_id))
        n += 1
    ids = list(published)
    applied = _wait_applied(conn, stack, ids)
    latencies = [1000 * (applied[f"NEW_MESSAGE:{i}"] - published[i]) for i in ids]
    return {
        "target_rate": round(rate, 1),
        "rate": round(len(ids) / max(elapsed, 1e-9), 1),
        "events": len(ids),
        "p50_ms": report.percentile(latencies, 50),
        "p99_ms": report.percentile(latencies, 99),
        "max_ms": max(latencies),
        "ids": ids,
    }


def _amqp_available() -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        if sock.connect_ex(("127.0.0.1", 5672)) != 0:
            return False
    listed = subprocess.run(
        ["rabbitmq-plugins", "list", "-e", "rabbitmq_consistent_hash_exchange"],
        capture_output=True,
        text=True,
        check=False,
    )
    return "rabbitmq_consistent_hash_exchange" in listed.stdout


def _wait_consumers_share(stack: Stack, conn: audit.Conn, source: str) -> None:
    """Until every consumer holds partitions (the leases have been shared out)."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        stack.check_alive()
        owners = conn.execute(
            "SELECT count(DISTINCT owner), count(*) FROM intake_partitionlease"
            " WHERE owner IS NOT NULL AND expires_at > now() AND name LIKE %s",
            [f"{source}:%"],
        ).fetchone()
        if owners and owners[0] == len(stack.consumer_names()) and owners[1] == PARTITIONS:
            return
        time.sleep(0.3)
    raise BenchError("the consumers did not share the partitions within 90 s; see consumer.log")


def run(cfg: config.BenchConfig, logs: Path) -> dict[str, Any]:
    reset_database(cfg)
    intake_url = _intake_redis_url(cfg)
    redis.Redis.from_url(intake_url).flushdb()
    env = {
        "INTAKE_BROKER_URL": intake_url,
        "INTAKE_QUEUE": QUEUE,
        "INTAKE_PARTITIONS": str(PARTITIONS),
        "INTAKE_LEASE_SECONDS": str(LEASE_SECONDS),
    }
    with Stack(cfg, logs, env=env, consumers=CONSUMERS) as stack:
        log("migrating")
        stack.migrate()
        log(f"starting gunicorn, Celery worker and beat, and the consumer (port {stack.port})")
        stack.start()
        stack.wait_ready()
        conn = audit.connect(cfg.database_url)
        _wait_consumers_share(stack, conn, "redis")

        def consumer_tree() -> list[psutil.Process]:
            procs = [stack.procs.get(name) for name in stack.consumer_names()]
            # One is absent for a moment while it restarts.
            return [p for proc in procs if proc is not None for p in monitor.tree(proc.pid)]

        origin = time.time()
        sampler = monitor.RssSampler(
            trees={"consumer": consumer_tree}, interval=cfg.sample_seconds, origin=origin
        )
        sampler.start()
        try:
            return _phases(cfg, stack, conn, logs, sampler, intake_url)
        finally:
            sampler.stop()
            conn.close()


def _phases(
    cfg: config.BenchConfig,
    stack: Stack,
    conn: audit.Conn,
    logs: Path,
    sampler: monitor.RssSampler,
    intake_url: str,
) -> dict[str, Any]:
    hostport = f"{stack.host}:{stack.port}"
    size = min(cfg.pool_conversations, 1000)
    log(f"opening {size} conversations over HTTP")
    pool_result = run_closed_loop(
        stack.host,
        stack.port,
        conversation_factory(hostport),
        connections=cfg.connections,
        total=size,
    )
    pool = pool_result.accepted_tags(201)
    if len(pool) < size * 0.99:
        raise BenchError(f"only {len(pool)} of {size} NEW_CONVERSATION got 201")

    seconds = max(3.0, cfg.saturation_seconds / cfg.rounds)
    log(f"NEW_MESSAGE saturation over HTTP, {seconds:g} s")
    run_closed_loop(
        stack.host,
        stack.port,
        webhook_factory(hostport, pool),
        connections=cfg.connections,
        seconds=1.0,
    )
    http = run_closed_loop(
        stack.host,
        stack.port,
        webhook_factory(hostport, pool),
        connections=cfg.connections,
        seconds=seconds,
    )
    http_rps = http.rps(202)
    log(f"HTTP: {http_rps:,.0f} NEW_MESSAGE/s")

    published: list[str] = []
    rss_start = sampler.sample()
    backlog = int(max(2000, min(30000, http_rps * 10)))
    redis_pub = Publisher(intake_url, QUEUE)
    try:
        log(f"Redis: a backlog of {backlog} events, consumed after a pause")
        redis_tp = _throughput(stack, conn, redis_pub, pool, backlog)
        published += redis_tp.pop("ids")
        log(
            f"Redis: {redis_tp['events_per_s']:,.0f} events/s applied "
            f"({redis_tp['events_per_s'] / max(http_rps, 1e-9):.2f} of HTTP)"
        )
        half = http_rps / 2
        log(f"Redis: publish-to-applied at {half:,.0f} events/s for {cfg.half_load_seconds:g} s")
        latency = _latency(stack, conn, redis_pub, pool, half, cfg.half_load_seconds)
        published += latency.pop("ids")
        log(f"Redis: p50 {latency['p50_ms']:.1f} ms, p99 {latency['p99_ms']:.1f} ms")
    finally:
        redis_pub.close()

    # The consumer's memory over the Redis phases (the RabbitMQ one restarts it).
    rss_end = sampler.sample()
    amqp: dict[str, Any] | None = None
    if _amqp_available():
        queue = f"parley.bench.{uuid.uuid4().hex[:8]}"
        for name in stack.consumer_names():
            stack.restart(name, {"INTAKE_BROKER_URL": AMQP_URL, "INTAKE_QUEUE": queue})
        _wait_consumers_share(stack, conn, "amqp")
        amqp_pub = Publisher(AMQP_URL, queue)
        try:
            log(f"RabbitMQ: a backlog of {backlog} events, consumed after a pause")
            amqp = _throughput(stack, conn, amqp_pub, pool, backlog)
            published += amqp.pop("ids")
            log(f"RabbitMQ: {amqp['events_per_s']:,.0f} events/s applied")
        finally:
            amqp_pub.close()
    else:
        log("RabbitMQ is not answering (or lacks the consistent-hash plugin): skipped")

    keys = [f"NEW_MESSAGE:{i}" for i in published]
    inbox = conn.execute(f"SELECT count(*) FROM {INBOX} WHERE event_id = ANY(%s)", [keys])
    in_inbox = inbox.fetchone()[0]  # type: ignore[index]
    stored = conn.execute(
        f"SELECT count(*) FROM {audit.MESSAGE} WHERE id = ANY(%s::uuid[])", [published]
    ).fetchone()[0]  # type: ignore[index]
    dead = conn.execute(f"SELECT count(*) FROM {DEAD_LETTER}").fetchone()[0]  # type: ignore[index]
    minutes = max((rss_end["t"] - rss_start["t"]) / 60, 1e-9)
    result = {
        "http_new_message_rps": round(http_rps, 1),
        "redis": {k: report.rnd(v) if isinstance(v, float) else v for k, v in redis_tp.items()},
        "redis_to_http_ratio": report.rnd(redis_tp["events_per_s"] / max(http_rps, 1e-9), 2),
        "latency_half_rate": {
            k: report.rnd(v) if isinstance(v, float) else v for k, v in latency.items()
        },
        "amqp": amqp and {k: report.rnd(v) if isinstance(v, float) else v for k, v in amqp.items()},
        "audit": {
            "published": len(published),
            "applied_once": in_inbox,
            "messages_stored": stored,
            "dead_letters": dead,
            "lost": len(published) - in_inbox,
        },
        "consumers": CONSUMERS,
        "consumer_rss_start_mb": rss_start["consumer"],
        "consumer_rss_end_mb": rss_end["consumer"],
        "consumer_rss_slope_mb_per_min": report.rnd(
            (rss_end["consumer"] - rss_start["consumer"]) / minutes, 2
        ),
        "rss_series": sampler.series,
    }
    result["targets"] = {
        "redis_at_least_http": result["redis_to_http_ratio"] is not None
        and result["redis_to_http_ratio"] >= 1.0,
        "latency_p99_under_100ms": latency["p99_ms"] < 100,
        "every_event_applied_once": in_inbox == len(published) == stored and dead == 0,
    }
    report.write_json(cfg.results / f"{NAME}.json", result)
    return result


def table(result: dict[str, Any]) -> str:
    t = result["targets"]
    verdict = lambda ok: "PASS" if ok else "FAIL"  # noqa: E731
    lines = [
        f"HTTP NEW_MESSAGE saturation        {result['http_new_message_rps']:>10,.0f} req/s",
        f"Redis consumed                     {result['redis']['events_per_s']:>10,.0f} events/s"
        f"   ratio {result['redis_to_http_ratio']}  {verdict(t['redis_at_least_http'])} (>= 1)",
    ]
    if result["amqp"]:
        lines.append(
            f"RabbitMQ consumed                  {result['amqp']['events_per_s']:>10,.0f} events/s"
        )
    lat = result["latency_half_rate"]
    lines += [
        f"publish-to-applied at {lat['rate']:,.0f}/s      p50 {lat['p50_ms']} ms  "
        f"p99 {lat['p99_ms']} ms  {verdict(t['latency_p99_under_100ms'])} (< 100 ms)",
        f"consumer RSS                       {result['consumer_rss_start_mb']} -> "
        f"{result['consumer_rss_end_mb']} MB ({result['consumer_rss_slope_mb_per_min']} MB/min)",
        f"audit                              {result['audit']['applied_once']} of "
        f"{result['audit']['published']} applied once, {result['audit']['dead_letters']} dead "
        f"letters  {verdict(t['every_event_applied_once'])}",
    ]
    return "\n".join(lines)
