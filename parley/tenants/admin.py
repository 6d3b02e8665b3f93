from __future__ import annotations

from django.contrib import admin

from parley.tenants.models import Tenant


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "time_zone", "idle_close_after", "daily_close_at", "updated_at")
    search_fields = ("id", "name")
    readonly_fields = ("created_at", "updated_at")
