from __future__ import annotations

from django.urls import path

from parley.assistance import apis

urlpatterns = [
    path(
        "assistance-requests/",
        apis.AssistanceRequestCreateApi.as_view(),
        name="assistance-requests",
    ),
    # the path without the slash too (APPEND_SLASH cannot redirect a POST).
    path("assistance-requests", apis.AssistanceRequestCreateNoSlashApi.as_view()),
    # str converters: a malformed id or name must get a problem+json 404.
    path(
        "assistance-requests/<str:request_id>/",
        apis.AssistanceRequestDetailApi.as_view(),
        name="assistance-request-detail",
    ),
    path("assistance-topics/", apis.TopicListApi.as_view(), name="assistance-topics"),
    path("assistance-topics/<str:slug>/", apis.TopicDetailApi.as_view(), name="assistance-topic"),
    path("assistance-channels/", apis.ChannelListApi.as_view(), name="assistance-channels"),
    path(
        "assistance-channels/<str:name>/",
        apis.ChannelDetailApi.as_view(),
        name="assistance-channel",
    ),
]
