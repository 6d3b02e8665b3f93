"""Static checks of the production container setup (SPEC O-2 and S-1).

No container engine is needed: compose.yaml is validated against the Compose
Specification schema vendored in check-jsonschema, the Dockerfile is linted
by hadolint and read for the properties the image must have, the entrypoint
is run with stand-ins for the programs it starts, and every real command it
dispatches to is resolved in this virtualenv. The production settings go
through ``manage.py check --deploy``.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import runpy
import secrets
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
# The virtualenv's scripts live next to its interpreter.
BIN = Path(sys.executable).parent
ENTRYPOINT = ROOT / "docker" / "entrypoint.sh"
APP_SERVICES = ("web", "live", "worker", "scheduler", "consumer")
BACKING_SERVICES = ("postgres", "redis")
# Names whose values are secrets: never in the image, never literal in compose.yaml.
SECRET_NAMES = {
    "SECRET_KEY",
    "WEBHOOK_SECRET",
    "API_TOKEN",
    "SENTRY_DSN",
    "POSTGRES_PASSWORD",
    "DATABASE_URL",
    "ASSISTANCE_SLACK_WEBHOOK_URL",
    "ASSISTANCE_CONFIG_KEYS",
    "EMAIL_URL",
    "REPLY_WEBHOOK_URL",
    "REPLY_WEBHOOK_SECRET",
}
TIMEOUT = 60


def run(args: list[str], env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )


def tool(name: str) -> str:
    path = BIN / name
    assert path.is_file(), f"{name} is not installed next to {sys.executable}"
    return str(path)


def clean_env(**overrides: str) -> dict[str, str]:
    """This process's environment without any Parley knob, plus ``overrides``."""
    knobs = set(env_example()) | {"DJANGO_SETTINGS_MODULE"}
    env = {key: value for key, value in os.environ.items() if key not in knobs}
    env.update(overrides)
    return env


# --- compose.yaml -------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "compose.yaml").read_text())
    assert isinstance(data, dict)
    return data


def test_compose_file_validates_against_the_compose_specification() -> None:
    result = run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", "compose.yaml"]
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_defines_the_stack(compose: dict[str, Any]) -> None:
    assert "version" not in compose, "the Compose Specification has no top-level version"
    services = compose["services"]
    assert set(APP_SERVICES + BACKING_SERVICES) <= set(services)
    for name in APP_SERVICES:
        assert services[name]["build"] == ".", name
        assert services[name]["command"] == [name], name
    for name in (*APP_SERVICES, *BACKING_SERVICES):
        assert services[name]["restart"] == "unless-stopped", name
    # One way in: the proxy; web and live are reached through it.
    assert "${PARLEY_HTTP_PORT:-8000}:8080" in services["proxy"]["ports"]
    assert "ports" not in services["web"]
    assert "ports" not in services["live"]


def test_app_services_wait_for_healthy_postgres_and_redis(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in APP_SERVICES:
        depends_on = services[name]["depends_on"]
        for backing in BACKING_SERVICES:
            assert depends_on[backing]["condition"] == "service_healthy", (name, backing)


def test_postgres_redis_and_web_have_healthchecks(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in (*BACKING_SERVICES, "web", "live", "proxy"):
        healthcheck = services[name]["healthcheck"]
        assert not healthcheck.get("disable"), name
        assert healthcheck["test"][0] in ("CMD", "CMD-SHELL"), name
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]
    assert services["redis"]["healthcheck"]["test"][1:] == ["redis-cli", "ping"]
    assert "/healthz" in " ".join(services["web"]["healthcheck"]["test"])
    assert "LIVE_PORT" in " ".join(services["live"]["healthcheck"]["test"])


NGINX = ROOT / "docker" / "nginx.conf"


def test_the_proxy_is_the_official_nginx_with_the_repository_config(
    compose: dict[str, Any],
) -> None:
    proxy = compose["services"]["proxy"]
    assert proxy["image"].startswith("nginx:")
    assert "./docker/nginx.conf:/etc/nginx/nginx.conf:ro" in proxy["volumes"]
    for upstream in ("web", "live"):
        assert proxy["depends_on"][upstream]["condition"] == "service_healthy"
    assert compose["services"]["live"]["environment"]["LIVE_PORT"] == "8001"


def _nginx_locations() -> dict[str, str]:
    """Each ``location`` of nginx.conf and the text of its block."""
    text = NGINX.read_text()
    blocks = {}
    for match in re.finditer(r"location\s+([^{]+?)\s*\{(.*?)\n\s*\}", text, re.S):
        blocks[match.group(1).strip()] = match.group(2)
    return blocks


def test_the_proxy_sends_the_waiting_paths_to_live_unbuffered() -> None:
    """SPEC L-2: long polls and event streams reach live, with response buffering off."""
    locations = _nginx_locations()
    waiting = "~ ^/(api/pix|api/util|api/replies|console)/"
    assert waiting in locations
    block = locations[waiting]
    assert "proxy_pass http://live;" in block
    assert "proxy_buffering off;" in block
    assert "gzip off;" in block
    assert "proxy_pass http://web;" in locations["/"]
    assert "server web:8000;" in NGINX.read_text()
    assert "server live:8001;" in NGINX.read_text()
    # Every path the live process serves is one the proxy routes to it.
    pattern = re.compile(waiting.removeprefix("~ "))
    for path in ("/api/pix/12345678/stream/start", "/api/util/msgs/1/2", "/console/"):
        assert pattern.match(path), path
    for path in ("/webhook/", "/conversations/x/", "/admin/", "/api/docs/"):
        assert not pattern.match(path), path


def test_redis_keeps_queued_tasks(compose: dict[str, Any]) -> None:
    command = " ".join(compose["services"]["redis"]["command"])
    for option in ("--appendonly yes", "--appendfsync everysec", "--maxmemory-policy noeviction"):
        assert option in command


def test_app_services_use_the_compose_database_and_broker(compose: dict[str, Any]) -> None:
    for name in APP_SERVICES:
        environment = compose["services"][name]["environment"]
        assert environment["PARLEY_ENV"] == "production"
        assert urlsplit(environment["DATABASE_URL"]).hostname == "postgres"
        assert urlsplit(environment["REDIS_URL"]).hostname == "redis"


def test_web_and_worker_share_the_metrics_folder(compose: dict[str, Any]) -> None:
    mounts = {}
    for name in ("web", "worker"):
        service = compose["services"][name]
        folder = service["environment"]["PROMETHEUS_MULTIPROC_DIR"]
        volume = next(
            (v.split(":")[0] for v in service["volumes"] if v.split(":")[1] == folder), None
        )
        assert volume in compose["volumes"], f"{name}: no named volume at {folder}"
        mounts[name] = (volume, folder)
    assert mounts["web"] == mounts["worker"]


def test_the_worker_keeps_the_default_object_store_on_a_named_volume(
    compose: dict[str, Any],
) -> None:
    """Transcripts and analytics files (T-6) outlive the container when no bucket is set."""
    worker = compose["services"]["worker"]
    mounts = dict(v.split(":")[::-1] for v in worker["volumes"])
    assert mounts.get("/app/var/objects") in compose["volumes"]
    runs = " ".join(args for keyword, args in final_stage() if keyword == "RUN")
    assert "/app/var/objects" in runs.split("chown parley:parley", 1)[1]


def test_compose_holds_no_literal_secret(compose: dict[str, Any]) -> None:
    """Secrets come from ${...} interpolation (.env or the shell), never from the file."""
    for name, service in compose["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if key not in SECRET_NAMES:
                continue
            secret = urlsplit(value).password if "://" in value else value
            assert str(secret).startswith("${"), (name, key, value)


# --- Dockerfile -----------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        instructions.append((keyword.upper(), " ".join(args.split())))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continuation line"
    return instructions


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile()
    start = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[start:]


def env_keys(keyword: str, args: str) -> set[str]:
    if keyword == "ARG":
        return {args.split("=")[0].strip()}
    if "=" not in args.split()[0]:  # legacy "ENV NAME value"
        return {args.split()[0]}
    return set(re.findall(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)=", args))


def test_dockerfile_passes_hadolint() -> None:
    result = run([tool("hadolint"), "Dockerfile"])
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_is_multi_stage_on_python_slim() -> None:
    images = [args.split()[0] for keyword, args in dockerfile() if keyword == "FROM"]
    assert len(images) >= 2
    assert images[-1] == "python:3.11-slim"
    runs = " ".join(args for keyword, args in dockerfile() if keyword in ("RUN", "COPY"))
    assert "requirements/main.lock" in runs


def test_dockerfile_runs_as_a_non_root_user() -> None:
    users = [args for keyword, args in final_stage() if keyword == "USER"]
    assert users, "no USER in the final stage"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")


def test_dockerfile_has_a_healthcheck_on_healthz() -> None:
    healthchecks = [args for keyword, args in final_stage() if keyword == "HEALTHCHECK"]
    assert len(healthchecks) == 1
    assert "/healthz" in healthchecks[0]
    assert "urllib" in healthchecks[0]


def test_dockerfile_bakes_in_no_secret() -> None:
    for keyword, args in dockerfile():
        if keyword in ("ENV", "ARG"):
            assert not env_keys(keyword, args) & SECRET_NAMES, f"{keyword} {args}"
        elif "SECRET_KEY" in args:
            # Only the throwaway key on collectstatic's own command line.
            assert keyword == "RUN", f"{keyword} {args}"
            assert "collectstatic" in args


def test_dockerfile_environment_and_port() -> None:
    env = set()
    for keyword, args in final_stage():
        if keyword == "ENV":
            env |= set(re.findall(r"(?:^|\s)([A-Za-z_]\w*=\S+)", args))
    assert {"PARLEY_ENV=production", "PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1"} <= env
    assert ("EXPOSE", "8000") in final_stage()
    runs = [args for keyword, args in final_stage() if keyword == "RUN"]
    assert any("manage.py collectstatic --noinput" in args for args in runs)


def test_compose_metrics_folder_matches_the_image(compose: dict[str, Any]) -> None:
    image_env = " ".join(args for keyword, args in final_stage() if keyword == "ENV")
    folder = compose["services"]["web"]["environment"]["PROMETHEUS_MULTIPROC_DIR"]
    assert f"PROMETHEUS_MULTIPROC_DIR={folder}" in image_env


def test_entrypoint_is_copied_in_and_executable() -> None:
    stage = final_stage()
    entrypoint = json.loads(next(args for keyword, args in stage if keyword == "ENTRYPOINT"))
    workdir = next(args for keyword, args in reversed(stage) if keyword == "WORKDIR")
    in_image = Path(entrypoint[0])
    assert in_image.is_relative_to(workdir), f"{in_image} is not under WORKDIR {workdir}"
    source = in_image.relative_to(workdir)
    assert ROOT / source == ENTRYPOINT
    copies = [args.split()[-2:] for keyword, args in stage if keyword == "COPY"]
    assert [".", "."] in copies or [str(source), str(in_image)] in copies
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert not {"docker", "docker/", str(source)} & set(ignored)

    try:
        staged = run(["git", "ls-files", "--stage", "--", str(source)])
    except FileNotFoundError:
        pytest.skip("git is not installed")
    if staged.returncode != 0:
        pytest.skip("not a git checkout")
    if staged.stdout:
        assert staged.stdout.split()[0] == "100755", staged.stdout
    else:  # not committed yet: git will record the file's mode bit
        assert os.access(ENTRYPOINT, os.X_OK)


def test_dockerignore_keeps_secrets_and_local_state_out() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".env", ".git", ".venv", "var"} <= ignored
    assert not {"config", "parley", "manage.py", "requirements"} & ignored


# --- docker/entrypoint.sh ----------------------------------------------------------


def entrypoint_roles() -> set[str]:
    text = ENTRYPOINT.read_text()
    block = text[text.index('case "$role" in') : text.index("esac")]
    return {role for line in block.splitlines() if (role := _case_label(line))}


def _case_label(line: str) -> str | None:
    match = re.fullmatch(r"\s*([\w*-]+)\)\s*", line)
    return match.group(1) if match else None


def test_entrypoint_roles_match_compose_and_image(compose: dict[str, Any]) -> None:
    roles = entrypoint_roles()
    assert roles == {"web", "live", "worker", "scheduler", "consumer", "migrate", "*"}
    for name in APP_SERVICES:
        assert compose["services"][name]["command"][0] in roles
    cmd = json.loads(next(args for keyword, args in final_stage() if keyword == "CMD"))
    assert cmd[0] in roles
    assert "set -eu" in ENTRYPOINT.read_text()


@pytest.fixture
def stubs(tmp_path: Path) -> Path:
    """Stand-ins for python, gunicorn and celery that log how they were called."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for name in ("python", "gunicorn", "celery"):
        stub = folder / name
        stub.write_text('#!/bin/sh\nprintf \'%s\\n\' "${0##*/} $*" >> "$STUB_LOG"\n')
        stub.chmod(0o755)
    return folder


def dispatch(stubs: Path, *args: str, **env: str) -> list[str]:
    log = stubs / "calls.log"
    result = run(
        [str(ENTRYPOINT), *args],
        env={"PATH": f"{stubs}:/usr/bin:/bin", "STUB_LOG": str(log), **env},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return log.read_text().splitlines() if log.exists() else [result.stdout.strip()]


def test_entrypoint_web_migrates_resets_metrics_and_execs_gunicorn(
    stubs: Path, tmp_path: Path
) -> None:
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    (metrics / "counter_7.db").write_bytes(b"stale")
    calls = dispatch(stubs, "web", PROMETHEUS_MULTIPROC_DIR=str(metrics))
    assert calls == [
        "python manage.py migrate --noinput",
        "gunicorn --config config/gunicorn.py config.wsgi",
    ]
    assert metrics.is_dir()
    assert not list(metrics.iterdir())


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["worker"], {}, "celery --app config worker --loglevel INFO --concurrency 2"),
        (
            ["worker"],
            {"WORKER_CONCURRENCY": "5"},
            "celery --app config worker --loglevel INFO --concurrency 5",
        ),
        (
            ["scheduler"],
            {},
            "celery --app config beat --loglevel INFO --schedule /tmp/celerybeat-schedule",
        ),
        (["migrate"], {}, "python manage.py migrate --noinput"),
        (["live"], {}, "python -m config.live"),
        (["consumer"], {}, "python manage.py consume"),
        (["python", "manage.py", "shell"], {}, "python manage.py shell"),
    ],
)
def test_entrypoint_dispatch(
    stubs: Path, args: list[str], env: dict[str, str], expected: str
) -> None:
    assert dispatch(stubs, *args, **env) == [expected]


def test_entrypoint_runs_anything_else_as_given(stubs: Path) -> None:
    assert dispatch(stubs, "echo", "hello") == ["hello"]


def test_the_programs_the_entrypoint_starts_are_installed(stubs: Path, tmp_path: Path) -> None:
    calls: list[str] = []
    for role in ("web", "live", "worker", "scheduler", "consumer", "migrate"):
        calls += dispatch(stubs, role, PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"))
    programs = {call.split()[0] for call in calls}
    assert programs == {"python", "gunicorn", "celery"}
    for program in programs:
        assert os.access(tool(program), os.X_OK), program


def test_gunicorn_preloads_the_app_so_a_recycled_worker_is_ready_at_once() -> None:
    config = runpy.run_path("config/gunicorn.py")
    assert config["preload_app"] is True
    assert config["max_requests"] > 0  # recycling stays on: it is cheap with preloading


def test_gunicorn_accepts_the_config_and_the_wsgi_app(tmp_path: Path) -> None:
    result = run(
        [tool("gunicorn"), "--check-config", "--config", "config/gunicorn.py", "config.wsgi"],
        env=clean_env(PARLEY_VAR_DIR=str(tmp_path)),
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_wsgi_and_celery_apps_import() -> None:
    wsgi = importlib.import_module("config.wsgi")
    assert callable(wsgi.application)
    celery = importlib.import_module("config.celery")
    assert celery.app.main == "parley"


@pytest.mark.parametrize(
    ("subcommand", "options"),
    [("worker", ["--loglevel", "--concurrency"]), ("beat", ["--loglevel", "--schedule"])],
)
def test_celery_cli_loads_the_app(subcommand: str, options: list[str], tmp_path: Path) -> None:
    # The celery command imports --app before it parses the subcommand.
    result = run(
        [tool("celery"), "--app", "config", subcommand, "--help"],
        env=clean_env(PARLEY_VAR_DIR=str(tmp_path)),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for option in options:
        assert option in result.stdout


def test_manage_py_migrate_is_available(tmp_path: Path) -> None:
    result = run(
        [sys.executable, "manage.py", "migrate", "--help"],
        env=clean_env(PARLEY_VAR_DIR=str(tmp_path)),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "--noinput" in result.stdout


# --- Production settings (S-1) ------------------------------------------------------


def test_production_settings_pass_the_deploy_checklist(tmp_path: Path) -> None:
    env = clean_env(
        PARLEY_ENV="production",
        SECRET_KEY=secrets.token_urlsafe(64),
        ALLOWED_HOSTS="parley.example",
        PARLEY_VAR_DIR=str(tmp_path),
    )
    assert "DEBUG" not in env
    result = run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], env=env
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_production_settings_require_a_secret_key(tmp_path: Path) -> None:
    env = clean_env(PARLEY_ENV="production", PARLEY_VAR_DIR=str(tmp_path))
    assert "SECRET_KEY" not in env
    result = run([sys.executable, "manage.py", "check"], env=env)
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


# --- .env.example -------------------------------------------------------------------


def env_example() -> dict[str, str | None]:
    """Every knob in .env.example: its value, or None when it is commented out."""
    knobs: dict[str, str | None] = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if match := re.fullmatch(r"([A-Z][A-Z0-9_]*)=(.*)", line):
            knobs[match.group(1)] = match.group(2)
        elif match := re.fullmatch(r"# ([A-Z][A-Z0-9_]*)=\S.*", line):
            knobs.setdefault(match.group(1), None)
    return knobs


def knobs_read_by_the_code() -> set[str]:
    patterns = {
        "config/settings.py": r"\benv(?:iron\.Env\(\))?\.\w+\(\s*\"([A-Z][A-Z0-9_]*)\"",
        "config/gunicorn.py": r"os\.environ\.get\(\s*'([A-Z][A-Z0-9_]*)'",
        "config/live.py": r"os\.environ\.get\(\s*\"([A-Z][A-Z0-9_]*)\"",
        "docker/entrypoint.sh": r"\$\{([A-Z][A-Z0-9_]*)[:}]",
        "compose.yaml": r"\$\{([A-Z][A-Z0-9_]*)[:}]",
    }
    names: set[str] = set()
    for path, pattern in patterns.items():
        found = set(re.findall(pattern, (ROOT / path).read_text()))
        assert found, f"no environment variable found in {path}: has the pattern gone stale?"
        names |= found
    return names


def test_env_example_lists_every_knob_with_a_comment() -> None:
    knobs = env_example()
    missing = knobs_read_by_the_code() - set(knobs)
    assert not missing, f".env.example lacks {sorted(missing)}"
    lines = (ROOT / ".env.example").read_text().splitlines()
    knob_line = re.compile(r"(# )?[A-Z][A-Z0-9_]*=")
    for index, line in enumerate(lines):
        if knob_line.match(line):
            above = lines[index - 1]
            assert above.startswith("# "), f"no comment above {line!r}"
            assert not knob_line.match(above), f"no comment above {line!r}"
    assert knobs["PARLEY_ENV"] == "production"
    assert knobs["SECURE_SSL_REDIRECT"] == "false"
    for name in ("SECRET_KEY", "POSTGRES_PASSWORD", "PROMETHEUS_MULTIPROC_DIR"):
        assert name in knobs


def test_env_example_values_parse(tmp_path: Path) -> None:
    """The file's values, as a container would get them, load the settings."""
    values = {key: value for key, value in env_example().items() if value is not None}
    values |= {
        "PARLEY_VAR_DIR": str(tmp_path / "var"),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    (tmp_path / "metrics").mkdir()
    # Importing the settings parses every value; gunicorn's file parses its own.
    script = "import runpy, django; django.setup(); runpy.run_path('config/gunicorn.py')"
    result = run(
        [sys.executable, "-c", script],
        env=clean_env(DJANGO_SETTINGS_MODULE="config.settings", **values),
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_consumer_service_reads_its_own_broker_and_shares_the_metrics(
    compose: dict[str, Any],
) -> None:
    consumer = compose["services"]["consumer"]
    assert consumer["environment"]["INTAKE_BROKER_URL"].startswith("${INTAKE_BROKER_URL:-redis://")
    assert "metrics:/run/parley-metrics" in consumer["volumes"]
    assert consumer["depends_on"]["web"]["condition"] == "service_healthy"
    procfile = (ROOT / "Procfile").read_text()
    assert "consumer: python manage.py consume" in procfile
