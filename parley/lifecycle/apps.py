from __future__ import annotations

from django.apps import AppConfig


class LifecycleConfig(AppConfig):
    name = "parley.lifecycle"
    label = "lifecycle"
    verbose_name = "Lifecycle: auto-close and archive"
