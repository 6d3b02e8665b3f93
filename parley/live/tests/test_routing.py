"""A waiting request can only reach the live process (SPEC L-1)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.urls import URLPattern, URLResolver, get_resolver

from parley.core import health


def views(patterns: list[Any]) -> Iterator[Any]:
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from views(entry.url_patterns)
        elif isinstance(entry, URLPattern):
            yield getattr(entry.callback, "view_class", entry.callback)


def test_the_web_process_routes_none_of_the_live_views() -> None:
    web = set(views(get_resolver("config.urls").url_patterns))
    live = set(views(get_resolver("config.urls_live").url_patterns))

    # Only the probes are common: each process answers them for itself.
    assert web & live == {health.healthz, health.readyz}


def test_the_live_process_runs_no_sync_only_middleware() -> None:
    """Under ASGI one sync-only middleware puts every request on a thread of its own."""
    import importlib.util
    import os
    import subprocess
    import sys

    script = (
        "import django, importlib; django.setup();"
        "from django.conf import settings;"
        "from django.utils.module_loading import import_string;"
        "bad = [m for m in settings.MIDDLEWARE"
        " if not getattr(import_string(m), 'async_capable', False)];"
        "print(settings.ROOT_URLCONF, bad)"
    )
    env = {**os.environ, "PARLEY_PROCESS": "live", "DJANGO_SETTINGS_MODULE": "config.settings"}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    assert importlib.util.find_spec("config.urls_live") is not None
    assert result.stdout.strip() == "config.urls_live []"
