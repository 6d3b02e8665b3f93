from __future__ import annotations

from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "parley.tenants"
    label = "tenants"
    verbose_name = "Tenants"
