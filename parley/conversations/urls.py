from __future__ import annotations

from django.urls import path

from parley.conversations.apis import ConversationDetailApi, ConversationListApi

urlpatterns = [
    path("conversations/", ConversationListApi.as_view(), name="conversation-list"),
    # A str converter, not uuid: a malformed id must reach the view and get a
    # problem+json 404, not fall through the resolver.
    path(
        "conversations/<str:conversation_id>/",
        ConversationDetailApi.as_view(),
        name="conversation-detail",
    ),
]
