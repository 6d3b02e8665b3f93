from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from parley.intake import services
from parley.intake.models import DeadLetter, InboxEvent, IntakeConsumer, PartitionLease


@admin.register(DeadLetter)
class DeadLetterAdmin(admin.ModelAdmin):
    list_display = ("id", "received_at", "source", "queue", "code", "redrive_result", "short")
    list_filter = ("code", "source", "redrive_result")
    search_fields = ("=id", "=event_id", "reason")
    ordering = ("-received_at", "-id")
    actions = ["redrive"]
    readonly_fields = [f.name for f in DeadLetter._meta.fields]

    @admin.display(description="reason")
    def short(self, letter: DeadLetter) -> str:
        return letter.reason[:100]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Re-drive the selected dead letters (apply them again)")
    def redrive(self, request: HttpRequest, queryset: QuerySet[DeadLetter]) -> None:
        results: dict[str, int] = {}
        for pk in queryset.order_by("received_at", "id").values_list("pk", flat=True):
            outcome = services.dead_letter_redrive(dead_letter_id=pk)
            result = outcome.code or outcome.outcome.value
            results[result] = results.get(result, 0) + 1
        summary = ", ".join(f"{count} {result}" for result, count in sorted(results.items()))
        self.message_user(request, f"Re-driven: {summary}.", messages.SUCCESS)


@admin.register(InboxEvent)
class InboxEventAdmin(admin.ModelAdmin):
    list_display = ("event_id", "source", "applied_at")
    search_fields = ("=event_id",)
    list_filter = ("source",)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(PartitionLease)
class PartitionLeaseAdmin(admin.ModelAdmin):
    list_display = ("name", "owner", "expires_at")


@admin.register(IntakeConsumer)
class IntakeConsumerAdmin(admin.ModelAdmin):
    list_display = ("owner", "source", "seen_at")
