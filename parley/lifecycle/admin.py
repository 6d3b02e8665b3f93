from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from parley.lifecycle.models import ScheduledClose


@admin.register(ScheduledClose)
class ScheduledCloseAdmin(admin.ModelAdmin):
    """The daily closes: planned, running and done. The tick writes them; read-only here."""

    list_display = (
        "tenant",
        "local_date",
        "local_time",
        "time_zone",
        "cutoff_at",
        "status",
        "closed_count",
        "started_at",
        "finished_at",
    )
    list_filter = ("status",)
    search_fields = ("tenant__id", "tenant__name")
    date_hierarchy = "cutoff_at"
    list_select_related = ("tenant",)
    ordering = ("-cutoff_at",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
