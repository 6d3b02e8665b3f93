"""Django's middleware for the live process, without a thread hop per hook.

Under ASGI, Django runs each hook of a ``MiddlewareMixin`` middleware
(``process_request``, ``process_view``, ``process_response``) through
``sync_to_async``: a hand-off to a thread and back, for the request's own
thread. With the default stack that is about fifteen hand-offs per
request, which cost more CPU than a long poll's database work (README,
"The live process"). A long poll's cycle of 204s then makes 200 idle
collectors a measurable load.

The hooks of most of these middleware never touch the database (headers,
the host check, the CSRF cookie, a lazy user), so here they run on the
event loop. Sessions and messages may write to the database when a view
used them; their response hook hops to a thread only then.
``parley.live.tests.test_middleware`` holds each class to that.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import middleware as auth
from django.contrib.messages import middleware as messages
from django.contrib.sessions import middleware as sessions
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponseBase
from django.middleware import clickjacking, common, csrf, security


class _InlineHooks:
    """Runs the middleware's hooks on the event loop, as plain calls."""

    get_response: Any

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        response = None
        if hasattr(self, "process_request"):
            response = self.process_request(request)
        response = response or await self.get_response(request)
        if hasattr(self, "process_response"):
            response = await self._response(request, response)
        return response

    async def _response(self, request: HttpRequest, response: HttpResponseBase) -> Any:
        return self.process_response(request, response)  # type: ignore[attr-defined]


class SecurityMiddleware(_InlineHooks, security.SecurityMiddleware):
    pass


class CommonMiddleware(_InlineHooks, common.CommonMiddleware):
    pass


class XFrameOptionsMiddleware(_InlineHooks, clickjacking.XFrameOptionsMiddleware):
    pass


class AuthenticationMiddleware(_InlineHooks, auth.AuthenticationMiddleware):
    """Sets a lazy ``request.user``; the session is read only when a view asks for it."""


class CsrfViewMiddleware(_InlineHooks, csrf.CsrfViewMiddleware):
    """The CSRF check, with its token in a cookie (never in the session, a database read)."""

    def __init__(self, get_response: Any) -> None:
        if settings.CSRF_USE_SESSIONS:
            raise ImproperlyConfigured("the live process keeps the CSRF token in its cookie")
        super().__init__(get_response)

    async def process_view(  # type: ignore[override]
        self, request: HttpRequest, callback: Any, callback_args: Any, callback_kwargs: Any
    ) -> HttpResponseBase | None:
        return super().process_view(request, callback, callback_args, callback_kwargs)


class _SavedInThread(_InlineHooks):
    """A response hook that may write to the database: in a thread, if a view used it."""

    def used(self, request: HttpRequest) -> bool:
        raise NotImplementedError

    async def _response(self, request: HttpRequest, response: Any) -> Any:
        if not self.used(request):
            return response
        save = sync_to_async(self.process_response, thread_sensitive=True)  # type: ignore[attr-defined]
        return await save(request, response)


class SessionMiddleware(_SavedInThread, sessions.SessionMiddleware):
    """A lazy session, saved (in a thread) only if a view read or changed it."""

    def used(self, request: HttpRequest) -> bool:
        session = getattr(request, "session", None)
        return session is not None and (session.accessed or session.modified)


class MessageMiddleware(_SavedInThread, messages.MessageMiddleware):
    """Messages are stored (in a thread) only if a view added or read some."""

    def used(self, request: HttpRequest) -> bool:
        storage = getattr(request, "_messages", None)
        return storage is not None and (storage.used or storage.added_new)
