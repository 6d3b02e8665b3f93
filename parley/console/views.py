"""The console's pages, its actions and its login (SPEC C-1, C-2, C-3, C-5).

Every view runs in the live process. The page views are async and do their
database work in one short sync function (``db.short``): they take the
outbox position *before* they read what the page shows, and the page hands
it to its stream, which replays from there (C-4). Only staff users of the
admin's login get in; anyone else is sent to log in.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, Literal
from uuid import UUID

import structlog
from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.contrib import messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.views import LoginView, LogoutView, redirect_to_login
from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from parley.console import db, registry, screens, selectors
from parley.core.errors import ParleyError, problem_response
from parley.outbox import selectors as outbox

log = structlog.get_logger(__name__)

# The pages load nothing but their own files: a script that slipped into a
# page (it cannot: every user text is escaped) would not run.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

Viewer = Literal["staff", "other", "anonymous"]


def secured(response: HttpResponseBase) -> HttpResponseBase:
    """What every console response carries: the CSP, and no caching of private pages."""
    response["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    add_never_cache_headers(response)
    return response


def secured_view(view: Callable[..., Any]) -> Callable[..., Any]:
    if iscoroutinefunction(view):

        @wraps(view)
        async def async_view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            return secured(await view(request, *args, **kwargs))

        return async_view

    @wraps(view)
    def sync_view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        return secured(view(request, *args, **kwargs))

    return sync_view


def viewer(request: HttpRequest) -> Viewer:
    """Who asks: a staff user, another user, or nobody (reads the session: call via db.short)."""
    user = request.user
    if not user.is_authenticated:
        return "anonymous"
    return "staff" if user.is_active and user.is_staff else "other"


def _page_context(request: HttpRequest, screen: screens.Screen) -> dict[str, Any] | None:
    # The position first: anything committed after it reaches the page by its
    # stream, even if the page's own reads already show it (then twice, harmlessly).
    position = outbox.current_position()
    context = screen.context()
    if context is None:
        return None
    context.update(
        screen=screen,
        section=screen.section,
        position=outbox.encode(position),
        stream_url=f"{reverse('console:events')}?{screen.stream_query}",
        now=timezone.now(),
        nav_panels=registry.panels("page"),
        retention_seconds=int(settings.OUTBOX_RETENTION.total_seconds()),
        heartbeat_seconds=settings.CONSOLE_HEARTBEAT_SECONDS,
    )
    if isinstance(screen, screens.ConversationList):
        context["tenants"] = selectors.tenant_choices()
    return context


def _render_page(request: HttpRequest, screen: screens.Screen | None) -> tuple[int, str] | None:
    """The page's status and HTML, or None for a visitor to send to the login page."""
    if viewer(request) != "staff":
        return None
    context = None if screen is None else _page_context(request, screen)
    if screen is None or context is None:
        html = render_to_string(
            "console/not_found.html",
            {"now": timezone.now(), "nav_panels": registry.panels("page"), "section": ""},
            request=request,
        )
        return 404, html
    return 200, render_to_string(screen.template, context, request=request)


async def _page(request: HttpRequest, screen: screens.Screen | None) -> HttpResponseBase:
    rendered = await db.short(_render_page, request, screen)
    if rendered is None:
        return redirect_to_login(request.get_full_path(), reverse("console:login"))
    status, html = rendered
    return HttpResponse(html, status=status)


@require_GET
@secured_view
async def conversation_list(request: HttpRequest) -> HttpResponseBase:
    return await _page(
        request, screens.ConversationList(selectors.ListFilters.from_query(request.GET))
    )


@require_GET
@secured_view
async def conversation_detail(request: HttpRequest, conversation_id: UUID) -> HttpResponseBase:
    return await _page(request, screens.ConversationDetail(conversation_id))


@require_GET
@secured_view
async def panel_page(request: HttpRequest, name: str) -> HttpResponseBase:
    panel = registry.panel(name)
    if panel is None or panel.scope != "page":
        # Only a staff user learns which panels exist.
        return await _page(request, None)
    return await _page(request, screens.PanelPage(panel))


def refusal(who: Viewer) -> HttpResponse:
    """401 for nobody, 403 for a user who is not staff (the stream and the session check)."""
    if who == "anonymous":
        response = problem_response(
            status=401,
            code="not_authenticated",
            title="Not authenticated",
            detail="Log in to the console first.",
        )
        # Not a standard scheme: the console authenticates with the session cookie.
        response["WWW-Authenticate"] = 'Session realm="parley-console"'
        return response
    return problem_response(
        status=403,
        code="permission_denied",
        title="Permission denied",
        detail="The console is for staff users.",
    )


@require_GET
@secured_view
async def session(request: HttpRequest) -> HttpResponseBase:
    """204 while the session may use the console, else 401/403: what a page asks
    when its stream was refused, to tell a logout from an outage."""
    who = await db.short(viewer, request)
    return HttpResponse(status=204) if who == "staff" else refusal(who)


def _perform(request: HttpRequest, action: registry.Action, target: str) -> tuple[bool, bool, str]:
    """(allowed, failed, what to tell the operator)."""
    if viewer(request) != "staff":
        return False, False, ""
    try:
        done = action.perform(target=target, user=request.user)
    except ParleyError as exc:
        log.info("console_action_refused", action=action.name, target=target, code=exc.code)
        return True, True, exc.detail
    log.info("console_action", action=action.name, target=target, user=request.user.pk)
    return True, False, done or "Done."


@require_POST
@secured_view
async def action(request: HttpRequest, name: str, target: str) -> HttpResponseBase:
    """An operator's action (CSRF-checked by Django's middleware, as every POST)."""
    act = registry.action(name)
    if act is None:
        return problem_response(
            status=404, code="not_found", title="Not found", detail=f"No action {name!r}."
        )
    allowed, failed, text = await db.short(_perform, request, act, target)
    htmx = request.headers.get("HX-Request") == "true"
    if not allowed:
        login = reverse("console:login")
        if htmx:
            response = HttpResponse(status=204)
            response["HX-Redirect"] = login
            return response
        return redirect_to_login(reverse("console:conversations"), login)
    if htmx:
        html = render_to_string("console/includes/notice.html", {"text": text, "failed": failed})
        return HttpResponse(html)
    (messages.error if failed else messages.success)(request, text)
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, {request.get_host()}, request.is_secure()):
        back = reverse("console:conversations")
    return HttpResponseRedirect(back, status=303)


class ConsoleLoginView(LoginView):
    """The admin's login (staff only), on the console's own pages and process."""

    template_name = "console/login.html"
    authentication_form = AdminAuthenticationForm
    # A logged-in user who is not staff sees the form again, with a word why.
    redirect_authenticated_user = False

    def get_default_redirect_url(self) -> str:
        return reverse("console:conversations")


login = secured_view(ConsoleLoginView.as_view())
logout = secured_view(LogoutView.as_view(next_page="console:login"))
