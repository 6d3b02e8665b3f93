from __future__ import annotations

from django.apps import AppConfig


class IntakeConfig(AppConfig):
    name = "parley.intake"
    label = "intake"
    verbose_name = "Queue intake"
