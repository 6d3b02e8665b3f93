from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.utils import timezone

from parley.core.errors import ParleyError
from parley.tenants import validation
from parley.tenants.models import Tenant


class TenantForm(forms.ModelForm):
    """The close settings as Q-1 and T-1 define them: an IANA zone, at least one
    second of idleness, a whole-minute local time. Each field is checked by
    ``parley.tenants.validation``, the same rules as ``PUT /tenants/{id}/``."""

    idle_close_after = forms.IntegerField(
        required=False, min_value=1, help_text=Tenant._meta.get_field("idle_close_after").help_text
    )
    daily_close_at = forms.TimeField(
        required=False,
        input_formats=["%H:%M"],
        widget=forms.TimeInput(format="%H:%M"),
        help_text="Local time HH:MM in the tenant's zone; empty: never.",
    )

    class Meta:
        model = Tenant
        fields = ("id", "name", "time_zone", "idle_close_after", "daily_close_at")

    def _check(self, cleaner: Any, field: str, value: Any) -> Any:
        try:
            return cleaner(value)
        except ParleyError as exc:
            raise forms.ValidationError((exc.errors or {}).get(field) or [exc.detail]) from exc

    def clean_time_zone(self) -> str:
        name = str(self.cleaned_data["time_zone"]).strip()
        return str(self._check(validation.clean_time_zone, "time_zone", name))

    def clean_idle_close_after(self) -> int | None:
        value = self.cleaned_data.get("idle_close_after")
        checked = self._check(validation.clean_idle_close_after, "idle_close_after", value)
        return int(checked) if checked is not None else None

    def clean_daily_close_at(self) -> Any:
        value = self.cleaned_data.get("daily_close_at")
        return self._check(validation.clean_daily_close_at, "daily_close_at", value)


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    form = TenantForm
    list_display = ("id", "name", "time_zone", "idle_close_after", "daily_close_at", "updated_at")
    search_fields = ("id", "name")
    readonly_fields = ("created_at", "updated_at")

    def get_readonly_fields(self, request: Any, obj: Tenant | None = None) -> Any:
        # The id is chosen when the tenant is made, never changed after.
        return (*self.readonly_fields, "id") if obj is not None else self.readonly_fields

    def save_model(self, request: Any, obj: Tenant, form: Any, change: bool) -> None:
        obj.updated_at = timezone.now()
        super().save_model(request, obj, form, change)
