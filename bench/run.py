"""``make bench``: run the selected parts (all by default) and write ``latest.json``.

``python -m bench`` runs every part of :mod:`bench.parts` in order;
``python -m bench core streams`` (or ``BENCH_PARTS=core,streams``) runs
those alone. Each part writes ``bench/results/<part>.json``; ``latest.json``
gathers the parts of the run with the machine and the commit, and the
tables are printed at the end.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from bench import config, parts, report
from bench.common import log, run_record
from bench.stack import BenchError, check_services


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def selected(argv: list[str]) -> list[str]:
    names = argv or [n for n in os.environ.get("BENCH_PARTS", "").replace(",", " ").split() if n]
    names = names or list(parts.PARTS)
    for name in names:
        parts.load(name)  # fails early on an unknown name
    return names


def main(argv: list[str] | None = None) -> int:
    # Ctrl-C and SIGTERM both unwind through the Stack, which stops the servers.
    # SIGINT is set explicitly: a shell starts background jobs with it ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _on_sigterm)
    names = selected(sys.argv[1:] if argv is None else argv)
    cfg = config.load()
    cfg.results.mkdir(parents=True, exist_ok=True)
    logs = cfg.results / "logs"
    logs.mkdir(exist_ok=True)
    started = datetime.now(UTC)
    origin = time.time()
    results: dict[str, Any] = {}
    try:
        log(f"checking PostgreSQL and Redis; database {cfg.database}, Redis {cfg.redis_url}")
        check_services(cfg)
        for name in names:
            log(f"=== part {name} ===")
            results[name] = parts.load(name).run(cfg, logs)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench: interrupted; the stack was stopped.", file=sys.stderr)
        return 130
    summary = {
        "parts": results,
        **run_record(started, origin),
    }
    report.write_json(cfg.results / "latest.json", summary)
    for name, result in results.items():
        print()
        print(f"== {name} ==")
        print(parts.load(name).table(result))
    print()
    log(f"wrote {cfg.results / 'latest.json'}")
    return 0
