from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin

from parley.core.errors import ParleyError
from parley.tenants import validation
from parley.tenants.models import Tenant


class TenantForm(forms.ModelForm):
    """The admin's form checks each field with the API's rules (``parley.tenants.validation``)."""

    class Meta:
        model = Tenant
        fields = ["id", "name", "time_zone", "idle_close_after", "daily_close_at"]

    def _check(self, cleaner: Any, field: str) -> Any:
        try:
            return cleaner(self.cleaned_data.get(field))
        except ParleyError as exc:
            messages = (exc.errors or {}).get(field) or [exc.detail]
            raise forms.ValidationError(messages) from exc

    def clean_time_zone(self) -> str:
        return str(self._check(validation.clean_time_zone, "time_zone"))

    def clean_idle_close_after(self) -> int | None:
        value = self._check(validation.clean_idle_close_after, "idle_close_after")
        return int(value) if value is not None else None

    def clean_daily_close_at(self) -> Any:
        return self._check(validation.clean_daily_close_at, "daily_close_at")


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    form = TenantForm
    list_display = ("id", "name", "time_zone", "idle_close_after", "daily_close_at", "updated_at")
    search_fields = ("id", "name")
    readonly_fields = ("created_at", "updated_at")
