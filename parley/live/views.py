"""Async DRF views for the live process.

DRF's ``APIView`` runs its handlers synchronously. Under ASGI, Django would
then run each request on a thread of its own for as long as it lasts, and a
long poll would hold that thread for seconds. :class:`AsyncAPIView` keeps
DRF's request, authentication, error handling (problem+json) and the OpenAPI
schema that drf-spectacular reads from it, but awaits its handlers on the
event loop, so a waiting request holds nothing but its coroutine.

Everything DRF does around the handler here is CPU-only (no database): the
authentication and permission classes of the live views must be too.
"""

from __future__ import annotations

import inspect
from typing import Any

from django.http import HttpRequest, HttpResponseBase
from rest_framework.views import APIView


class AsyncAPIView(APIView):
    """An ``APIView`` whose HTTP handlers are coroutines (all of them, as Django requires)."""

    async def dispatch(  # type: ignore[override]
        self, request: HttpRequest, *args: Any, **kwargs: Any
    ) -> HttpResponseBase:
        self.args = args
        self.kwargs = kwargs
        drf_request = self.initialize_request(request, *args, **kwargs)
        self.request = drf_request
        self.headers = self.default_response_headers
        try:
            self.initial(drf_request, *args, **kwargs)
            method = (drf_request.method or "").lower()
            if method in self.http_method_names:
                handler = getattr(self, method, self.http_method_not_allowed)
            else:
                handler = self.http_method_not_allowed
            response = handler(drf_request, *args, **kwargs)
            if inspect.isawaitable(response):
                response = await response
        except Exception as exc:
            response = self.handle_exception(exc)
        self.response = self.finalize_response(drf_request, response, *args, **kwargs)
        return self.response
