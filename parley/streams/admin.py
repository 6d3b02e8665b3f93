"""Streams and Pix messages in the admin: open streams per key, what each handed out."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse

from parley.streams import selectors
from parley.streams.models import Interaction, PixMessage, ReplyItem, Stream


class OpenFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("open", "open"), ("closed", "closed")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "open":
            return queryset.filter(closed_at__isnull=True)
        if self.value() == "closed":
            return queryset.filter(closed_at__isnull=False)
        return queryset


class InteractionInline(admin.TabularInline):
    model = Interaction
    fields = ("id", "seq", "issued_at", "item_count", "acked_at")
    readonly_fields = fields
    ordering = ("-seq",)
    extra = 0
    max_num = 0
    can_delete = False


@admin.register(Stream)
class StreamAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "kind",
        "key",
        "slot",
        "opened_at",
        "last_seen_at",
        "closed_at",
        "close_reason",
        "delivered_count",
        "acknowledged_count",
    )
    list_filter = (OpenFilter, "kind", "close_reason")
    search_fields = ("key",)
    date_hierarchy = "opened_at"
    ordering = ("-id",)
    readonly_fields = [f.name for f in Stream._meta.fields]
    inlines = [InteractionInline]
    change_list_template = "admin/streams/stream/change_list.html"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # streams are opened by collectors, never by hand

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> TemplateResponse:
        # Open streams per kind and key (an ISPB, a tenant) above the list.
        context = {**(extra_context or {}), "open_by_key": selectors.open_streams_by_key()}
        response = super().changelist_view(request, extra_context=context)
        assert isinstance(response, TemplateResponse)
        return response


class DeliveredFilter(admin.SimpleListFilter):
    title = "delivery"
    parameter_name = "delivery"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("pending", "pending"),
            ("delivered", "delivered"),
            ("acknowledged", "acknowledged"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "pending":
            return queryset.filter(delivered_at__isnull=True)
        if self.value() == "delivered":
            return queryset.filter(delivered_at__isnull=False, interaction__acked_at__isnull=True)
        if self.value() == "acknowledged":
            return queryset.filter(interaction__acked_at__isnull=False)
        return queryset


class _ItemAdmin(admin.ModelAdmin):
    list_select_related = ("interaction",)
    raw_id_fields = ("interaction",)

    @admin.display(description="delivery")
    def delivery(self, obj: Any) -> str:
        if obj.delivered_at is None:
            return "pending"
        if obj.interaction is not None and obj.interaction.acked_at is not None:
            return "acknowledged"
        return "delivered"

    @admin.display(description="stream")
    def stream(self, obj: Any) -> Any:
        return obj.interaction.stream_id if obj.interaction else None


@admin.register(PixMessage)
class PixMessageAdmin(_ItemAdmin):
    list_display = (
        "end_to_end_id",
        "recebedor_ispb",
        "valor",
        "pagador_nome",
        "data_hora_pagamento",
        "created_at",
        "delivery",
        "stream",
    )
    list_filter = (DeliveredFilter,)
    search_fields = ("=end_to_end_id", "=recebedor_ispb", "=pagador_ispb", "=tx_id")
    ordering = ("-id",)


@admin.register(ReplyItem)
class ReplyItemAdmin(_ItemAdmin):
    list_display = (
        "message_id",
        "conversation_id",
        "tenant_id",
        "created_at",
        "delivery",
        "stream",
    )
    list_filter = (DeliveredFilter,)
    search_fields = ("=message_id", "=conversation_id", "=tenant_id")
    ordering = ("-id",)
