"""The live process's middleware: Django's behaviour, without a thread hop per hook."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from asgiref import sync
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.views.decorators.csrf import ensure_csrf_cookie

from parley.live.tests.client import LiveClient, live_application

pytestmark = pytest.mark.django_db(transaction=True)


async def plain(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"ok": True})


def counter(request: HttpRequest) -> HttpResponse:
    request.session["n"] = request.session.get("n", 0) + 1
    return JsonResponse({"n": request.session["n"]})


def note(request: HttpRequest) -> HttpResponse:
    messages.info(request, "saved")
    return HttpResponse("noted")


def notes(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"messages": [str(m) for m in messages.get_messages(request)]})


@ensure_csrf_cookie
def form(request: HttpRequest) -> HttpResponse:
    return HttpResponse("posted" if request.method == "POST" else "form")


urlpatterns = [
    path("plain", plain),
    path("counter", counter),
    path("note", note),
    path("notes", notes),
    path("form", form),
]


@pytest.fixture
def app(settings: Any) -> Any:
    with live_application(settings, urlconf=__name__) as client:
        settings.ALLOWED_HOSTS = ["testserver"]
        yield client


def cookies(reply: Any) -> dict[str, str]:
    found = {}
    for message in reply.messages:
        for name, value in message.get("headers", []):
            if name.lower() == b"set-cookie":
                key, _, rest = value.decode().partition("=")
                found[key] = rest.split(";", 1)[0]
    return found


def test_the_live_process_uses_the_hop_free_middleware(settings: Any) -> None:
    assert all(not m.startswith(("django.", "whitenoise.")) for m in settings.LIVE_MIDDLEWARE)
    assert len(settings.LIVE_MIDDLEWARE) == len(settings.MIDDLEWARE) - 1  # WhiteNoise left out


def test_a_request_that_uses_no_session_makes_no_thread_hop_in_the_middleware(
    app: LiveClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    hops: list[str] = []
    original = sync.SyncToAsync.__init__

    def counting(self: Any, func: Any, *args: Any, **kwargs: Any) -> None:
        hops.append(getattr(func, "__qualname__", repr(func)))
        original(self, func, *args, **kwargs)

    monkeypatch.setattr(sync.SyncToAsync, "__init__", counting)

    reply = app.get("/plain")

    assert reply.status == 200
    assert not [hop for hop in hops if "Middleware" in hop], hops
    # Django's own headers are all there.
    assert reply.headers["x-frame-options"] == "DENY"
    assert reply.headers["x-content-type-options"] == "nosniff"
    assert reply.headers["referrer-policy"] == "same-origin"


def test_the_host_is_still_checked(app: LiveClient) -> None:
    reply = app.get("/plain", headers={"Host": "evil.example"})

    assert reply.status == 400


def test_a_session_a_view_changes_is_saved(app: LiveClient) -> None:
    first = app.get("/counter")
    session = cookies(first)["sessionid"]

    second = app.get("/counter", headers={"Cookie": f"sessionid={session}"})

    assert (first.json(), second.json()) == ({"n": 1}, {"n": 2})


def test_messages_a_view_adds_are_stored_for_the_next_request(app: LiveClient) -> None:
    noted = app.get("/note")
    jar = "; ".join(f"{k}={v}" for k, v in cookies(noted).items())

    read = app.get("/notes", headers={"Cookie": jar})

    assert read.json() == {"messages": ["saved"]}


def test_csrf_is_still_enforced(app: LiveClient) -> None:
    token = cookies(app.get("/form"))["csrftoken"]
    form_headers = {"Content-Type": "application/x-www-form-urlencoded"}

    refused = app.request("POST", "/form", headers=form_headers, body=b"x=1")
    accepted = app.request(
        "POST",
        "/form",
        headers={**form_headers, "Cookie": f"csrftoken={token}", "X-CSRFToken": token},
        body=b"x=1",
    )

    assert refused.status == 403
    assert (accepted.status, accepted.body) == (200, b"posted")


def test_the_client_runs_requests_concurrently(app: LiveClient) -> None:
    """The hop-free hooks still let requests interleave on one event loop."""

    async def scenario() -> list[int]:
        replies = await asyncio.gather(*(app.call("GET", "/plain") for _ in range(20)))
        return [r.status for r in replies]

    assert app.run(scenario()) == [200] * 20
