from __future__ import annotations

from django.contrib import admin

from parley.surveys.models import SurveyResponse


@admin.register(SurveyResponse)
class SurveyResponseAdmin(admin.ModelAdmin):
    list_display = ("id", "conversation", "kind", "score", "responded_at", "recorded_at")
    list_filter = ("kind",)
    search_fields = ("=id", "=event_id", "=conversation__id")
    readonly_fields = [f.name for f in SurveyResponse._meta.fields]
