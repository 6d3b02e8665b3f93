from __future__ import annotations

from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    name = "parley.console"
    label = "console"
    verbose_name = "Operator console"

    def ready(self) -> None:
        # The console's own panels, then each app's ``console`` module: a
        # capability adds its panels and actions there (parley.console.registry).
        from django.utils.module_loading import autodiscover_modules

        from parley.console import builtins  # noqa: F401

        autodiscover_modules("console")
