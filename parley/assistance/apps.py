from __future__ import annotations

from django.apps import AppConfig


class AssistanceConfig(AppConfig):
    name = "parley.assistance"
    label = "assistance"
    verbose_name = "Assistance routing"

    def ready(self) -> None:
        # Every channel kind registers itself on import (channels/__init__.py),
        # and the system checks of the delivery timings.
        from parley.assistance import channels, checks  # noqa: F401
