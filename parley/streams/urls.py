"""The streaming API's URLs, for ``config/urls_live.py`` only: these requests wait (L-1)."""

from __future__ import annotations

from django.urls import path

from parley.streams.pix import apis as pix
from parley.streams.replies import apis as replies

urlpatterns = [
    # Seed 004's paths, without trailing slashes. "start" comes first; an
    # interaction id is 12 characters, so it can never be "start".
    path("api/pix/<str:ispb>/stream/start", pix.PixStreamStartApi.as_view(), name="pix-start"),
    path(
        "api/pix/<str:ispb>/stream/<str:interaction_id>",
        pix.PixStreamApi.as_view(),
        name="pix-stream",
    ),
    path("api/pix/msgs", pix.PixMessageCreateApi.as_view(), name="pix-msgs"),
    path(
        "api/util/msgs/<str:ispb>/<str:number>",
        pix.UtilMessagesApi.as_view(),
        name="pix-util-msgs",
    ),
    path("api/replies/stream/start", replies.ReplyStreamStartApi.as_view(), name="replies-start"),
    path(
        "api/replies/stream/<str:interaction_id>",
        replies.ReplyStreamApi.as_view(),
        name="replies-stream",
    ),
]
