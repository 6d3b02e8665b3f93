"""The production stack under test: a fresh database, gunicorn, the live process (uvicorn),
the Celery worker and beat (and, for the parts that need it, the queue consumer).

Each server process runs in its own process group, so that stopping
it reaches its children (gunicorn's and Celery's workers) and a Ctrl-C in the
terminal reaches only the orchestrator, which then stops everything in order.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

import psycopg
import redis
from psycopg import sql

from bench.config import ROOT, BenchConfig

GRACEFUL_STOP_SECONDS = 25.0


class BenchError(RuntimeError):
    """A failure worth a one-line message rather than a traceback."""


def check_services(cfg: BenchConfig) -> None:
    """Fail early, and clearly, when PostgreSQL or Redis is not answering."""
    try:
        with psycopg.connect(cfg.postgres_url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        raise BenchError(
            f"PostgreSQL is not answering at {_where(cfg.postgres_url)}: {exc}".strip()
            + "\nStart it (CI does), or point BENCH_POSTGRES_URL at a server."
        ) from exc
    try:
        client = redis.Redis.from_url(cfg.redis_url, socket_timeout=3, socket_connect_timeout=3)
        client.ping()
        client.close()
    except redis.RedisError as exc:
        raise BenchError(
            f"Redis is not answering at {_where(cfg.redis_url)}: {exc}"
            + "\nStart it (CI does), or point BENCH_REDIS_URL at a server."
        ) from exc


def _where(url: str) -> str:
    """host:port/db of a URL, without any credentials."""
    rest = url.split("://", 1)[-1]
    return rest.rsplit("@", 1)[-1]


def reset_database(cfg: BenchConfig) -> None:
    """Drop and re-create the bench database; flush the bench's Redis database."""
    name = sql.Identifier(cfg.database)
    with psycopg.connect(cfg.postgres_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(name))
    for url in {cfg.redis_url, cfg.redis_cache_url}:
        client = redis.Redis.from_url(url, socket_timeout=5)
        client.flushdb()
        client.close()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Stack:
    """Starts and stops gunicorn, the live process, the Celery worker and beat, as in the
    Procfile."""

    def __init__(
        self,
        cfg: BenchConfig,
        logs: Path,
        env: dict[str, str] | None = None,
        *,
        consumers: int = 0,
    ) -> None:
        """``env`` overrides settings of the servers (e.g. ``WEB_CONCURRENCY``);
        ``consumers`` adds that many queue consumers (``manage.py consume``): ``consumer``,
        ``consumer-2``, ..."""
        self.cfg = cfg
        self.consumers = consumers
        self.logs = logs
        self.port = free_port()
        self.live_port = free_port()
        self.host = "127.0.0.1"
        self.tmp = Path(tempfile.mkdtemp(prefix="parley-bench-"))
        (self.tmp / "prometheus").mkdir()
        (self.tmp / "var").mkdir()
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.env = self._environment()
        self.env.update(env or {})

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def live_url(self) -> str:
        return f"http://{self.host}:{self.live_port}"

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            PARLEY_ENV="production",
            SECRET_KEY=secrets.token_urlsafe(50),
            ALLOWED_HOSTS="127.0.0.1,localhost",
            SECURE_SSL_REDIRECT="false",
            DEBUG="false",
            HOST=self.host,
            PORT=str(self.port),
            LIVE_PORT=str(self.live_port),
            DATABASE_URL=self.cfg.database_url,
            REDIS_URL=self.cfg.redis_url,
            CELERY_BROKER_URL=self.cfg.redis_url,
            # The Django cache's Redis database: the next one, also the bench's own.
            REDIS_CACHE_DB=self.cfg.redis_cache_url.rpartition("/")[2],
            PROMETHEUS_MULTIPROC_DIR=str(self.tmp / "prometheus"),
            PARLEY_VAR_DIR=str(self.tmp / "var"),
            # The bench sends unsigned webhooks from one address, so neither
            # signatures nor a per-source rate limit apply (README, "What it
            # does not cover").
            WEBHOOK_SECRET="",
            WEBHOOK_RATE_LIMIT="",
            PYTHONUNBUFFERED="1",
        )
        if self.live_port:
            env["LIVE_PORT"] = str(self.live_port)
        return env

    def commands(self) -> dict[str, list[str]]:
        py = sys.executable
        live = {"live": [py, "-m", "config.live"]} if self.live_port else {}
        return live | {
            "web": [
                py,
                "-m",
                "gunicorn",
                "--config",
                "config/gunicorn.py",
                # Only so that two stacks on one machine do not share the
                # default control socket; the serving settings are untouched.
                "--control-socket",
                str(self.tmp / "gunicorn.ctl"),
                "config.wsgi",
            ],
            # The live process (config/live.py): long polls and event streams.
            "live": [py, "-m", "config.live"],
            "worker": [
                py,
                "-m",
                "celery",
                "--app",
                "config",
                "worker",
                "--loglevel",
                "INFO",
                "--concurrency",
                str(self.cfg.worker_concurrency),
                "--hostname",
                f"bench-{self.port}@%h",
            ],
            "scheduler": [
                py,
                "-m",
                "celery",
                "--app",
                "config",
                "beat",
                "--loglevel",
                "INFO",
                "--schedule",
                str(self.tmp / "var" / "celerybeat-schedule"),
            ],
            **{name: [py, "manage.py", "consume"] for name in self.consumer_names()},
        }

    def consumer_names(self) -> list[str]:
        return [f"consumer-{n}" if n > 1 else "consumer" for n in range(1, self.consumers + 1)]

    def migrate(self) -> None:
        log = self.logs / "migrate.log"
        with log.open("wb") as out:
            code = subprocess.call(
                [sys.executable, "manage.py", "migrate", "--noinput"],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        if code != 0:
            raise BenchError(f"manage.py migrate failed:\n{_tail(log)}")

    def start(self) -> None:
        for name, argv in self.commands().items():
            self._spawn(name, argv, self.env, mode="wb")

    def _spawn(self, name: str, argv: list[str], env: dict[str, str], mode: str = "ab") -> None:
        out = (self.logs / f"{name}.log").open(mode)
        self.procs[name] = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        out.close()

    def restart(self, name: str, env: dict[str, str]) -> None:
        """Stop one process (SIGTERM, then SIGKILL) and start it again with ``env`` on top."""
        proc = self.procs.pop(name)
        _signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(timeout=GRACEFUL_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)
            proc.wait(timeout=5)
        self._spawn(name, self.commands()[name], {**self.env, **env})

    def signal(self, name: str, sig: signal.Signals) -> None:
        """Signal a process's group (e.g. SIGSTOP / SIGCONT to pause the consumer)."""
        _signal_group(self.procs[name], sig)

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                tail = _tail(self.logs / f"{name}.log")
                raise BenchError(f"{name} exited with code {proc.returncode}:\n{tail}")

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Until ``/readyz`` answers 200 (database and broker reachable) on web and live."""
        deadline = time.monotonic() + timeout
        for name, url in (("gunicorn", self.base_url), ("the live process", self.live_url)):
            last = ""
            while True:
                self.check_alive()
                try:
                    with urllib.request.urlopen(f"{url}/readyz", timeout=3) as resp:
                        if resp.status == 200:
                            break
                except urllib.error.HTTPError as exc:
                    last = f"HTTP {exc.code}"
                except OSError as exc:
                    last = str(exc)
                if time.monotonic() > deadline:
                    raise BenchError(f"{name} was not ready after {timeout:.0f} s ({last}).")
                time.sleep(0.3)

    def pid(self, name: str) -> int:
        return self.procs[name].pid

    def stop(self) -> None:
        """SIGTERM each process group (web first), then SIGKILL what is left."""
        for name in ("web", "live", "scheduler", *self.consumer_names(), "worker"):
            proc = self.procs.get(name)
            if proc is not None and proc.poll() is None:
                _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + GRACEFUL_STOP_SECONDS
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        for proc in self.procs.values():
            # Children (workers) can outlive a leader that exited; the group id stays.
            _signal_group(proc, signal.SIGKILL)
            if proc.poll() is None:
                proc.wait(timeout=5)
        self.procs.clear()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> Stack:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)  # the process group this bench made for it


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:])
