"""The two views every kind of stream shares: ``.../stream/start`` and ``.../stream/{id}``.

A kind's views subclass these, name their kind, say how the path (or the
query) gives the key, and carry their OpenAPI description (``openapi``).
Order of checks: the key (X-2: "before anything else"), then the bearer
token when ``API_TOKEN`` is set, the method (405 with ``Allow``, X-10), the
``Accept`` header (406, X-3), and only then the database.

HEAD is not offered: Django would run GET for it, which consumes items,
and throw the body away.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.http import HttpResponseBase
from rest_framework.request import Request
from rest_framework.response import Response

from parley.core.auth import ApiTokenAuthentication, ApiTokenPermission
from parley.live.views import AsyncAPIView
from parley.streams import longpoll, negotiation, services
from parley.streams.errors import NotAcceptable
from parley.streams.kinds import StreamKind


class _StreamViewBase(AsyncAPIView):
    kind: ClassVar[StreamKind]
    authentication_classes = [ApiTokenAuthentication]
    permission_classes = [ApiTokenPermission]

    def stream_key(self, request: Request, **kwargs: Any) -> str:
        """The stream key of the path (and query); 400 if it is malformed."""
        raise NotImplementedError

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        self.key = self.stream_key(request, **kwargs)
        super().initial(request, *args, **kwargs)

    async def resolve_key(self, interaction_id: str) -> str:
        """The key of the stream that issued ``interaction_id``, for kinds whose paths name
        none; it is looked up before the bell subscription, which must know it."""
        return self.key

    def media_type(self, request: Request) -> str:
        chosen = negotiation.choose(request.headers.get("Accept"))
        if chosen is None:
            raise NotAcceptable(
                f"Accept allows neither {negotiation.SINGLE} (one item) nor "
                f"{negotiation.BATCH} (up to {negotiation.BATCH_LIMIT} items)."
            )
        return chosen


class StreamStartView(_StreamViewBase):
    """``GET .../stream/start``: open a stream and return its first answer."""

    http_method_names = ["get"]

    async def get(self, request: Request, **kwargs: Any) -> HttpResponseBase:
        return await longpoll.serve(
            kind=self.kind,
            key=self.key,
            media_type=self.media_type(request),
            begin=services.stream_start,
            begin_kwargs={"kind": self.kind, "key": self.key},
            opens=True,
        )


class StreamView(_StreamViewBase):
    """``GET|DELETE .../stream/{interactionId}``: the next answer, or the end of the stream."""

    http_method_names = ["get", "delete"]

    async def get(self, request: Request, interaction_id: str, **kwargs: Any) -> HttpResponseBase:
        media_type = self.media_type(request)
        key = await self.resolve_key(interaction_id)
        return await longpoll.serve(
            kind=self.kind,
            key=key,
            media_type=media_type,
            begin=services.stream_resume,
            begin_kwargs={"kind": self.kind, "key": key, "interaction_id": interaction_id},
            opens=False,
        )

    async def delete(
        self, request: Request, interaction_id: str, **kwargs: Any
    ) -> HttpResponseBase:
        key = await self.resolve_key(interaction_id)
        await longpoll.run_db(
            services.stream_delete, kind=self.kind, key=key, interaction_id=interaction_id
        )
        return Response({})
