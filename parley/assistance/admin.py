"""The admin: channels (configs write-only, shown masked), topics, deliveries and a retry action."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from rest_framework.exceptions import ValidationError as ApiValidationError

from parley.assistance import channels, services
from parley.assistance.crypto import EncryptedConfigField
from parley.assistance.errors import DeliveryNotFailed
from parley.assistance.models import Attempt, Channel, Delivery, Topic
from parley.assistance.services.catalog import channel_config_checked


def masked(channel: Channel) -> str:
    if channel.config.get(EncryptedConfigField.UNREADABLE):
        return "(unreadable: key missing)"
    if not channel.config:
        return "(none: the environment's defaults)"
    if channel.kind not in channels.KINDS:
        return "(set)"
    return json.dumps(channels.get(channel.kind).mask(channel.config), ensure_ascii=False)


class ChannelForm(forms.ModelForm):
    """The config is never put into the page: a new one replaces it, an empty field keeps it."""

    kind = forms.ChoiceField(choices=[])
    new_config = forms.CharField(
        label="Config",
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "autocomplete": "off"}),
        help_text="A JSON object, checked against the kind. Write-only: leave empty to keep "
        "the current one, or enter {} to use the environment's defaults.",
    )

    class Meta:
        model = Channel
        fields = ["name", "kind", "active", "rate_per_second", "burst"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        kind = self.fields["kind"]
        assert isinstance(kind, forms.ChoiceField)
        kind.choices = channels.choices()
        if self.instance.pk:
            self.fields["new_config"].help_text += f" Current: {masked(self.instance)}"

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        kind = cleaned.get("kind")
        raw = cleaned.get("new_config", "").strip()
        if not kind:
            return cleaned
        try:
            config = json.loads(raw) if raw else self.instance.config
        except json.JSONDecodeError:
            self.add_error("new_config", "Not valid JSON.")
            return cleaned
        try:
            cleaned["config"] = channel_config_checked(kind, config)
        except ApiValidationError as exc:
            detail = (
                exc.detail.get("config", exc.detail) if isinstance(exc.detail, dict) else exc.detail
            )
            self.add_error("new_config", json.dumps(detail, default=str))
        return cleaned

    def save(self, commit: bool = True) -> Channel:
        self.instance.config = self.cleaned_data["config"]
        channel: Channel = super().save(commit=commit)
        return channel


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    form = ChannelForm
    list_display = ("name", "kind", "active", "config_masked", "rate_per_second", "burst")
    list_filter = ("kind", "active")
    search_fields = ("name",)

    @admin.display(description="config")
    def config_masked(self, channel: Channel) -> str:
        return masked(channel)


class TopicForm(forms.ModelForm):
    class Meta:
        model = Topic
        fields = ["slug", "name", "channel", "active"]

    def clean_slug(self) -> str:
        slug: str = self.cleaned_data["slug"]
        return slug.strip().lower()


@admin.register(Topic)
class TopicAdmin(admin.ModelAdmin):
    form = TopicForm
    list_display = ("slug", "name", "channel", "active")
    list_filter = ("active",)
    list_select_related = ("channel",)
    search_fields = ("slug", "name")


class AttemptInline(admin.TabularInline):
    model = Attempt
    fields = ("n", "started_at", "ended_at", "outcome", "status_code", "error")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "purpose",
        "topic",
        "channel",
        "status",
        "attempts",
        "next_attempt_at",
        "created_at",
        "last_error",
    )
    list_filter = ("status", "purpose", "channel")
    list_select_related = ("channel",)
    search_fields = ("id", "conversation_id", "topic")
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
    inlines = [AttemptInline]
    actions = ["retry_failed"]
    readonly_fields = (
        "id",
        "purpose",
        "topic",
        "channel",
        "description",
        "conversation_id",
        "metadata",
        "tenant_id",
        "status",
        "attempts",
        "max_attempts",
        "last_error",
        "last_status_code",
        "next_attempt_at",
        "sent_at",
        "failed_at",
        "created_at",
        "updated_at",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Retry the selected FAILED deliveries")
    def retry_failed(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        retried = skipped = 0
        for delivery_id in queryset.values_list("pk", flat=True):
            try:
                services.delivery_retry(delivery_id=delivery_id)
                retried += 1
            except DeliveryNotFailed:
                skipped += 1
        self.message_user(request, f"{retried} queued again.", messages.SUCCESS)
        if skipped:
            self.message_user(request, f"{skipped} skipped: not FAILED.", messages.WARNING)
