from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django import forms
from django.contrib import admin
from django.utils import timezone

from parley.tenants.models import Tenant


class TenantForm(forms.ModelForm):
    """The close settings as Q-1 and T-1 define them: an IANA zone, at least one
    second of idleness, a whole-minute local time."""

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

    def clean_time_zone(self) -> str:
        name = str(self.cleaned_data["time_zone"]).strip()
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise forms.ValidationError(
                f"{name!r} is not an IANA time zone (for example America/Sao_Paulo)."
            ) from exc
        return name


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
