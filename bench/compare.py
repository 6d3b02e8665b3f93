"""Compare server settings side by side: saturation and half load for each value, interleaved.

    python -m bench.compare WEB_CONCURRENCY=4,6,8 [--rounds 3] [--seconds 5]

For each round, and each value in turn (the order rotates from round to
round, so that the machine's drift hits every value alike), it starts the
production stack with that setting (as ``make bench`` does), then measures:

* ``/healthz`` and NEW_MESSAGE saturation, closed loop, ``--seconds`` each
  after 1 s of warm-up, exactly as the bench's saturation rounds;
* NEW_MESSAGE at half of that saturation, open loop, as the bench's half-load
  phase (``BENCH_HALF_LOAD_SECONDS``, after a warm-up of the window + 1 s);

and stops the stack. Any setting the servers read from the environment can be
compared (``WEB_CONCURRENCY``, ``WORKER_CONCURRENCY``, ``CONN_MAX_AGE``...).
It prints the medians over the rounds per value and writes
``compare.json`` in ``BENCH_RESULTS_DIR``.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
import time
from itertools import pairwise
from typing import Any

from bench import audit, config, monitor, report
from bench.common import Phases, log
from bench.loadgen import request_bytes, run_closed_loop
from bench.parts.core import (
    canary,
    conversation_factory,
    half_load,
    webhook_factory,
    webhook_warmup,
)
from bench.run import _on_sigterm
from bench.stack import BenchError, Stack, check_services, reset_database

POOL = 1000


def _one(
    cfg: config.BenchConfig, name: str, value: str, seconds: float, pool: list[str]
) -> tuple[dict[str, Any], list[str]]:
    """Start the stack with ``name=value``, measure, stop. Returns the figures and the pool."""
    logs = cfg.results / "logs"
    with Stack(cfg, logs, env={name: value}) as stack:
        stack.migrate()
        stack.start()
        stack.wait_ready()
        conn = audit.connect(cfg.database_url)
        try:
            canary(stack, conn, timeout=cfg.window_s + 30)
            host, port = stack.host, stack.port
            hostport = f"{host}:{port}"
            if not pool:
                made = run_closed_loop(
                    host,
                    port,
                    conversation_factory(hostport),
                    connections=cfg.connections,
                    total=POOL,
                )
                pool = made.accepted_tags(201)
            healthz = request_bytes("GET", "/healthz", hostport)
            web = monitor.tree(stack.pid("web"))
            workers = len(web) - 1
            run_closed_loop(
                host, port, lambda: (healthz, ""), connections=cfg.connections, seconds=1.0
            )
            hz = run_closed_loop(
                host, port, lambda: (healthz, ""), connections=cfg.connections, seconds=seconds
            )
            _, size = webhook_warmup(cfg, host, port, pool)
            wh = run_closed_loop(
                host,
                port,
                webhook_factory(hostport, pool[:size]),
                connections=cfg.connections,
                seconds=seconds,
            )
            audit.wait_until_settled(conn, minimum=cfg.window_s + 0.5, maximum=cfg.window_s + 120)
            cpu_groups = {"web": lambda: monitor.tree(stack.pid("web"))}
            half = half_load(
                cfg, stack, conn, Phases(time.time()), cpu_groups, pool, wh.rps(202) / 2
            )
        finally:
            conn.close()
    figures = {
        name: value,
        "gunicorn_workers": workers,
        "healthz_rps": hz.rps(200),
        "healthz_p99_ms": report.percentile(hz.latencies(200), 99),
        "webhook_rps": wh.rps(202),
        "webhook_p50_ms": report.percentile(wh.latencies(202), 50),
        "webhook_p99_ms": report.percentile(wh.latencies(202), 99),
        "ratio": wh.rps(202) / hz.rps(200) if hz.rps(200) else float("nan"),
        "half_load_rps": half["rps"],
        "half_load_p50_ms": half["p50_ms"],
        "half_load_p99_ms": half["p99_ms"],
        "errors": hz.errors + wh.errors + half["errors"],
    }
    return figures, pool


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("setting", help="NAME=v1,v2,... e.g. WEB_CONCURRENCY=4,6,8")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0, help="per saturation measurement")
    args = parser.parse_args(argv)
    name, _, values_text = args.setting.partition("=")
    values = [v.strip() for v in values_text.split(",") if v.strip()]
    if not name or len(values) < 2:
        parser.error("give a setting and at least two values, e.g. WEB_CONCURRENCY=4,8")
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _on_sigterm)
    cfg = config.load()
    (cfg.results / "logs").mkdir(parents=True, exist_ok=True)
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in values}
    try:
        check_services(cfg)
        reset_database(cfg)
        pool: list[str] = []
        for n in range(args.rounds):
            order = values[n % len(values) :] + values[: n % len(values)]
            for value in order:
                log(f"round {n + 1}/{args.rounds}: {name}={value}")
                figures, pool = _one(cfg, name, value, args.seconds, pool)
                runs[value].append(figures)
                log(
                    f"{name}={value}: /healthz {figures['healthz_rps']:,.0f} req/s "
                    f"(p99 {figures['healthz_p99_ms']:.0f} ms), NEW_MESSAGE "
                    f"{figures['webhook_rps']:,.0f} req/s "
                    f"(p99 {figures['webhook_p99_ms']:.0f} ms), "
                    f"half load p99 {figures['half_load_p99_ms']:.1f} ms"
                )
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench: interrupted; the stack was stopped.", file=sys.stderr)
        return 130
    keys = [
        "healthz_rps",
        "healthz_p99_ms",
        "webhook_rps",
        "webhook_p50_ms",
        "webhook_p99_ms",
        "ratio",
        "half_load_p50_ms",
        "half_load_p99_ms",
    ]
    medians = {v: {k: statistics.median(r[k] for r in rs) for k in keys} for v, rs in runs.items()}
    (cfg.results / "compare.json").write_text(
        json.dumps({"setting": name, "runs": runs, "medians": medians}, indent=2) + "\n"
    )
    print()
    print(f"medians over {args.rounds} rounds")
    header = f"{name:>18}  " + "  ".join(f"{k:>16}" for k in keys)
    print(header)
    for v in values:
        print(f"{v:>18}  " + "  ".join(f"{medians[v][k]:>16.2f}" for k in keys))
    for a, b in pairwise(values):
        ratio = medians[b]["webhook_rps"] / medians[a]["webhook_rps"]
        print(f"NEW_MESSAGE {name}={b} / {name}={a}: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
