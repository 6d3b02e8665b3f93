from __future__ import annotations

from django.contrib import admin

from parley.conversations.models import BufferedMessage, Conversation, Message, MessageGroup


class MessageInline(admin.TabularInline):
    model = Message
    fk_name = "conversation"
    fields = ("id", "type", "content", "timestamp", "received_at", "group")
    readonly_fields = fields
    ordering = ("timestamp", "received_at", "id")
    extra = 0
    can_delete = False
    show_change_link = True


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ("id", "status", "created_at", "updated_at", "closed_at", "close_reason")
    list_filter = ("status", "close_reason")
    search_fields = ("id",)
    date_hierarchy = "created_at"
    readonly_fields = (
        "id",
        "created_at",
        "updated_at",
        "closed_at",
        "close_reason",
        "archived_at",
        "transcript_sha256",
    )
    inlines = [MessageInline]


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("id", "conversation", "type", "short_content", "timestamp", "received_at")
    list_filter = ("type",)
    search_fields = ("id", "content", "conversation__id")
    list_select_related = ("conversation",)
    raw_id_fields = ("conversation", "group", "reply_to")

    @admin.display(description="content")
    def short_content(self, obj: Message) -> str:
        return obj.content[:80]


@admin.register(MessageGroup)
class MessageGroupAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "conversation",
        "status",
        "opened_at",
        "reply_due_at",
        "replied_at",
        "reply_attempts",
    )
    list_filter = ("status",)
    search_fields = ("conversation__id",)
    raw_id_fields = ("conversation",)


@admin.register(BufferedMessage)
class BufferedMessageAdmin(admin.ModelAdmin):
    list_display = ("id", "conversation_id", "status", "received_at", "resolved_at")
    list_filter = ("status",)
    search_fields = ("id", "conversation_id", "content")
