"""End-to-end harness: real gunicorn, Celery worker and beat processes.

They share the test database with the test process (pytest-django's
transactional test database) and a broker of their own: a dedicated Redis
database when ``REDIS_URL`` is set, else the filesystem transport in a temp
folder. Windows are short, set through the environment like any deployment.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection

from parley.conversations.audit import Audit, exactly_once_audit

ROOT = Path(__file__).resolve().parents[2]
# Redis database used by the end-to-end brokers; flushed before each stack.
E2E_REDIS_DB = 13


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def redis_broker_url(db: int = E2E_REDIS_DB, *, base: str | None = None) -> str:
    """The same Redis server, another database number."""
    parts = urllib.parse.urlsplit(base or settings.REDIS_URL)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{db}"))


@dataclass
class Response:
    status: int
    body: dict[str, Any]


@dataclass
class Stack:
    """The running processes, and helpers to talk to them."""

    env: dict[str, str]
    workdir: Path
    port: int
    live_port: int = 0
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    # Monotonic times at which the supervisor restarted a crashed worker.
    worker_restarts: list[float] = field(default_factory=list)
    _supervisor: threading.Thread | None = None
    _stopping: threading.Event = field(default_factory=threading.Event)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def live_url(self) -> str:
        return f"http://127.0.0.1:{self.live_port}"

    # --- processes ---------------------------------------------------------

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115  (closed with the process)
        process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes[name] = process
        return process

    def start_web(self) -> None:
        self._spawn(
            "web",
            [sys.executable, "-m", "gunicorn", "--config", "config/gunicorn.py", "config.wsgi"],
        )
        self._wait(lambda: self._ready(), "web server", 30)
        # Warm every gunicorn worker: a cold first request can take longer
        # than the short test windows.
        for _ in range(4 * int(self.env.get("WEB_CONCURRENCY", "4"))):
            self.get("/readyz")

    def start_live(self) -> None:
        """The live process (uvicorn), as ``make run`` starts it."""
        self.live_port = self.live_port or free_port()
        self.env["LIVE_PORT"] = str(self.live_port)
        self._spawn("live", [sys.executable, "-m", "config.live"])

        def ready() -> bool:
            try:
                with urllib.request.urlopen(f"{self.live_url}/readyz", timeout=2) as reply:
                    return bool(reply.status == 200)
            except OSError:
                return False

        self._wait(ready, "live process", 30)

    def start_worker(self) -> None:
        log = self.workdir / "worker.log"
        offset = log.stat().st_size if log.exists() else 0
        self._spawn(
            "worker",
            [
                sys.executable,
                "-m",
                "celery",
                "--app",
                "config",
                "worker",
                "--concurrency",
                self.env.get("WORKER_CONCURRENCY", "2"),
                "--loglevel",
                "INFO",
                "--without-mingle",
                "--without-gossip",
            ],
        )
        self._wait(lambda: b" ready." in log.read_bytes()[offset:], "Celery worker", 30)

    def start_scheduler(self) -> None:
        self._spawn(
            "scheduler",
            [
                sys.executable,
                "-m",
                "celery",
                "--app",
                "config",
                "beat",
                "--loglevel",
                "INFO",
                "--schedule",
                str(self.workdir / "beat-schedule"),
            ],
        )

    def supervise(self) -> None:
        """Restart the worker if it exits on its own, as compose's restart policy does."""

        def loop() -> None:
            while not self._stopping.wait(0.2):
                worker = self.processes.get("worker")
                if worker is not None and worker.poll() is not None:
                    self.processes.pop("worker")
                    self.start_worker()
                    self.worker_restarts.append(time.monotonic())

        self._supervisor = threading.Thread(target=loop, daemon=True)
        self._supervisor.start()

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Signal the process group: a worker's pool children die with it."""
        process = self.processes.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        process.wait(timeout=30)

    def stop(self) -> None:
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join(timeout=40)
        for name in list(self.processes):
            process = self.processes[name]
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                self.kill(name)
            self.processes.pop(name, None)

    @staticmethod
    def _wait(predicate: Callable[[], bool], what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.1)
        raise TimeoutError(f"{what} did not become ready in {timeout} s")

    def _ready(self) -> bool:
        try:
            return self.get("/readyz").status == 200
        except OSError:
            return False

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-4000:]}"
            for path in sorted(self.workdir.glob("*.log"))
        )

    # --- HTTP --------------------------------------------------------------

    def request(self, method: str, path: str, payload: Any = None) -> Response:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(
            self.base_url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as reply:
                return Response(reply.status, json.loads(reply.read() or b"{}"))
        except urllib.error.HTTPError as error:
            return Response(error.code, json.loads(error.read() or b"{}"))

    def post(self, payload: Any) -> Response:
        return self.request("POST", "/webhook/", payload)

    def get(self, path: str) -> Response:
        return self.request("GET", path)

    # --- waiting on the database ----------------------------------------------

    def settle(self, *, timeout: float, conversation_ids: list[Any] | None = None) -> Audit:
        """Wait until no group owes a reply (or the timeout), then return the audit."""
        deadline = time.monotonic() + timeout
        while True:
            audit = exactly_once_audit(conversation_ids=conversation_ids)
            if audit.unanswered_groups == 0 or time.monotonic() > deadline:
                return audit
            time.sleep(0.1)


def _flush_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


def stack_env(
    workdir: Path,
    *,
    window: float | None,
    tolerance: float | None,
    broker_url: str | None = None,
    **extra: str,
) -> dict[str, str]:
    """The processes' environment. ``None`` windows leave the code's defaults in force."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(
            ("PYTEST_", "CELERY_", "GROUP_", "ORPHAN_", "SWEEP_", "REPLY_", "WORKER_")
        )
    }
    if broker_url is None and settings.REDIS_URL:
        broker_url = redis_broker_url()
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        PARLEY_ENV="development",
        PARLEY_VAR_DIR=str(workdir / "var"),
        DATABASE_URL=_database_url(),
        REDIS_URL="",
        CELERY_BROKER_URL=broker_url or "filesystem://",
        HOST="127.0.0.1",
        WEB_CONCURRENCY="4",
        LOG_LEVEL="INFO",
        LOG_FORMAT="json",
        PYTHONUNBUFFERED="1",
    )
    if window is not None:
        env["GROUP_WINDOW_SECONDS"] = str(window)
    if tolerance is not None:
        env["ORPHAN_TOLERANCE_SECONDS"] = str(tolerance)
    env.update(extra)
    return env


def _start_stack(
    tmp_path_factory: pytest.TempPathFactory,
    *,
    window: float | None,
    tolerance: float | None,
    live: bool = False,
    **extra: str,
) -> Stack:
    """Worker, scheduler and web; with ``live``, the live process too."""
    workdir = tmp_path_factory.mktemp("stack")
    env = stack_env(workdir, window=window, tolerance=tolerance, **extra)
    if env["CELERY_BROKER_URL"].startswith("redis"):
        _flush_redis(env["CELERY_BROKER_URL"])
    stack = Stack(env=env, workdir=workdir, port=free_port())
    stack.env["PORT"] = str(stack.port)
    try:
        stack.start_worker()
        stack.start_scheduler()
        stack.start_web()
        if live:
            stack.start_live()
    except TimeoutError:
        stack.stop()
        print(stack.logs())
        raise
    return stack


def _stop_all(stacks: list[Stack], *, show_logs: bool) -> None:
    for stack in stacks:
        stack.stop()
        if show_logs:
            print(stack.logs())
    stacks.clear()


@pytest.fixture(scope="module")
def module_stack_factory(
    django_db_setup: Any,
    django_db_blocker: Any,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[Callable[..., Stack]]:
    """Stacks shared by a module's tests; stopped, and their data flushed, when it ends.

    The module's tests may use the database directly (committed data: the
    processes must see it). Each test uses fresh ids, so they can share a stack.
    """
    stacks: list[Stack] = []
    failures_before = request.session.testsfailed

    def make(**options: Any) -> Stack:
        stacks.append(_start_stack(tmp_path_factory, **options))
        return stacks[-1]

    with django_db_blocker.unblock():
        yield make
        _stop_all(stacks, show_logs=request.session.testsfailed > failures_before)
        call_command("flush", interactive=False, verbosity=0)


@pytest.fixture
def stack_factory(
    transactional_db: Any, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Stack]]:
    """Stacks of one test, stopped when it ends."""
    stacks: list[Stack] = []
    failures_before = request.session.testsfailed

    def make(**options: Any) -> Stack:
        stacks.append(_start_stack(tmp_path_factory, **options))
        return stacks[-1]

    yield make
    _stop_all(stacks, show_logs=request.session.testsfailed > failures_before)
