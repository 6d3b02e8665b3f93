from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from parley.analytics.models import ExportBatch


@admin.register(ExportBatch)
class ExportBatchAdmin(admin.ModelAdmin):
    """The exporter's batches and the objects each wrote; read-only."""

    list_display = ("id", "status", "events", "exported", "created_at", "exported_at")
    list_filter = ("status",)
    ordering = ("-id",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
