"""uvicorn or granian for the live process? The figures behind the README's choice.

``python -m bench.live_servers`` (granian installed: ``pip install granian``,
it is not a dependency) serves ``config.asgi:application`` with each server
in turn, one process each, on a fresh bench database, and measures what the
live process is for:

* the RSS and CPU of the server holding ``BENCH_IDLE_POLLS`` (1,000) long
  polls that wait;
* the wake latency (commit of a message to a waiting collector's whole
  answer) with those polls held, ``BENCH_STREAM_SAMPLES`` times (100);
* single-message collection by one collector, requests per second (the
  per-request cost of server plus Django);
* whether a client that goes away mid-wait cancels its view (L-4): the
  stream it opened must be closed as abandoned within a few seconds.

It prints one table and writes ``bench/results/live_servers.json``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil

from bench import audit, config, report
from bench.common import log
from bench.parts.streams import Collector, IdlePolls, store
from bench.stack import free_port, reset_database

SERVERS = {
    "uvicorn": lambda port: [sys.executable, "-m", "config.live"],
    "granian": lambda port: [
        shutil.which("granian") or "granian",
        "--interface",
        "asgi",
        "--loop",
        "uvloop",
        "--workers",
        "1",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-ws",
        "config.asgi:application",
    ],
}


class _Server:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.live_port = host, port


def measure(name: str, cfg: config.BenchConfig, logs: Path) -> dict[str, Any]:
    port = free_port()
    env = {
        **os.environ,
        "PARLEY_ENV": "production",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false",
        "DATABASE_URL": cfg.database_url,
        "REDIS_URL": cfg.redis_url,
        "LIVE_PORT": str(port),
        "HOST": "127.0.0.1",
    }
    out = (logs / f"live-{name}.log").open("wb")
    process = subprocess.Popen(
        SERVERS[name](port),
        cwd=config.ROOT,
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    conn = audit.connect(cfg.database_url)
    try:
        _wait_ready(port)
        server = _Server("127.0.0.1", port)
        proc = psutil.Process(process.pid)

        def rss() -> float:
            return monitor_rss([proc, *proc.children(recursive=True)])

        rss_idle = rss()
        collected = _collect_rate(server, conn, seconds=5.0)
        abandoned = _leaves_mid_wait(server, conn, name)
        polls = int(os.environ.get("BENCH_IDLE_POLLS", "1000"))
        idle = IdlePolls(server, polls)  # type: ignore[arg-type]
        idle.start()
        try:
            cpu0, t0 = _cpu([proc, *proc.children(recursive=True)]), time.monotonic()
            time.sleep(10)
            cpu = (
                100
                * (_cpu([proc, *proc.children(recursive=True)]) - cpu0)
                / (time.monotonic() - t0)
            )
            held, rss_polls = idle.waiting, rss()
            wake = _wake(server, conn, int(os.environ.get("BENCH_STREAM_SAMPLES", "100")))
        finally:
            idle.stop()
        return {
            "server": name,
            "rss_idle_mb": report.rnd(rss_idle),
            "polls": polls,
            "polls_held": held,
            "rss_with_polls_mb": report.rnd(rss_polls),
            "cpu_with_polls_pct": report.rnd(cpu),
            "wake_p50_ms": wake[0],
            "wake_p99_ms": wake[1],
            "single_requests_per_s": report.rnd(collected),
            "disconnect_cancels_the_view": abandoned,
        }
    finally:
        conn.close()
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
        out.close()


def monitor_rss(procs: list[psutil.Process]) -> float:
    return sum(p.memory_info().rss for p in procs) / 2**20


def _cpu(procs: list[psutil.Process]) -> float:
    return sum(sum(p.cpu_times()[:2]) for p in procs)


def _wait_ready(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"the server on port {port} did not start; see its log")


def _collect_rate(server: _Server, conn: audit.Conn, seconds: float) -> float:
    ispb = f"{secrets.randbelow(10**7) + 10**7}"
    store(conn, ispb, 20_000)
    collector = Collector(server, ispb, "application/json")  # type: ignore[arg-type]
    done, end = 0, time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            collector.send()
            collector.receive()
            done += 1
    finally:
        collector.close()
    return done / seconds


def _leaves_mid_wait(server: _Server, conn: audit.Conn, name: str) -> bool:
    import socket

    ispb = f"{secrets.randbelow(10**7) + 2 * 10**7}"
    with socket.create_connection((server.host, server.live_port)) as sock:
        sock.sendall(
            f"GET /api/pix/{ispb}/stream/start HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
        )
        time.sleep(1.0)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        row = conn.execute(
            "SELECT close_reason FROM streams_stream WHERE key = %s", [ispb]
        ).fetchone()
        if row and row[0] == "abandoned":
            return True
        time.sleep(0.1)
    return False


def _wake(server: _Server, conn: audit.Conn, samples: int) -> tuple[float, float]:
    ispb = f"{secrets.randbelow(10**7) + 3 * 10**7}"
    collector = Collector(server, ispb, "application/json")  # type: ignore[arg-type]
    latencies = []
    try:
        collector.send()
        collector.receive()
        for _ in range(samples):
            collector.send()
            time.sleep(0.05)
            store(conn, ispb, 1)
            committed = time.perf_counter()
            collector.receive()
            latencies.append((time.perf_counter() - committed) * 1000)
    finally:
        collector.close()
    return (
        report.rnd(report.percentile(latencies, 50), 2) or 0.0,
        report.rnd(report.percentile(latencies, 99), 2) or 0.0,
    )


def main() -> int:
    cfg = config.load()
    logs = cfg.results / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    reset_database(cfg)
    env = {**os.environ, "DATABASE_URL": cfg.database_url, "REDIS_URL": cfg.redis_url}
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=config.ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    results = []
    for name in SERVERS:
        if name == "granian" and shutil.which("granian") is None:
            log("granian is not installed (pip install granian): skipped")
            continue
        log(f"measuring {name}")
        results.append(measure(name, cfg, logs))
    report.write_json(cfg.results / "live_servers.json", {"servers": results})
    keys = [k for k in results[0] if k != "server"] if results else []
    print("measure".ljust(30) + "".join(r["server"].rjust(12) for r in results))
    for key in keys:
        print(key.ljust(30) + "".join(str(r[key]).rjust(12) for r in results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
