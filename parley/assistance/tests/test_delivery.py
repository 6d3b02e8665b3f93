"""The delivery engine against a real local HTTP server, scripted per test (A-5 to A-7, A-9, A-10).

The clock is controlled (time-machine): a retry is made by travelling to its
due time and running the attempt again, as the sweep would.
"""

from __future__ import annotations

import json
import logging
import socket
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from email.utils import format_datetime
from typing import Any

import pytest
import time_machine
from django.utils import timezone
from pytest_httpserver import HTTPServer
from standardwebhooks.webhooks import Webhook
from werkzeug import Request, Response

from config.celery import app as celery_app
from parley.assistance import services
from parley.assistance.errors import DeliveryNotFailed
from parley.assistance.models import Attempt, Delivery
from parley.assistance.services.record import Step
from parley.assistance.tests.conftest import delivery
from parley.outbox.models import OutboxEvent

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("sql_path")]

SECRET_PATH = "/services/T0000/B0000/S3CR3TT0K3N"
WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
def slack(route: Any, httpserver: HTTPServer) -> Any:
    return route("sales-x", "slack", {"url": httpserver.url_for(SECRET_PATH)})


@pytest.fixture
def eager() -> Iterator[None]:
    """Tasks run in the caller (the sweep's hand-off), with exceptions raised.

    The worker's task-start hook closes "old" database connections, which
    inside the test's transaction would close the test's own connection.
    """
    from celery.signals import task_prerun

    from parley.conversations.tasks import _bind_task_context

    task_prerun.disconnect(_bind_task_context)
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True
    try:
        yield
    finally:
        celery_app.conf.task_always_eager = False
        celery_app.conf.task_eager_propagates = False
        task_prerun.connect(_bind_task_context)


def request_for(submit: Any, topic: str = "sales-x", **extra: Any) -> Delivery:
    response = submit({"topic": topic, "description": "Customer wants 40 seats", **extra})
    assert response.status_code == 202, response.content
    return delivery(response)


def attempt(d: Delivery) -> Step:
    return services.delivery_attempt(delivery_id=d.pk).step


def refreshed(d: Delivery) -> Delivery:
    d.refresh_from_db()
    return d


def events(kind: str) -> list[dict[str, Any]]:
    return [e.data for e in OutboxEvent.objects.filter(type=kind).order_by("id")]


def no_secret_anywhere(d: Delivery, *texts: str) -> None:
    stored = [
        d.last_error or "",
        *Attempt.objects.filter(delivery=d).values_list("error", flat=True),
    ]
    for text in [*stored, *texts]:
        assert "S3CR3TT0K3N" not in (text or "")
        assert SECRET_PATH not in (text or "")


class TestSlack:
    def test_a_200_is_sent_with_the_key_in_the_text_and_the_header(
        self, slack: Any, submit: Any, httpserver: HTTPServer
    ) -> None:
        httpserver.expect_oneshot_request(SECRET_PATH, method="POST").respond_with_data("ok")
        conversation_id = uuid.uuid4()
        d = request_for(submit, conversation_id=str(conversation_id))
        assert attempt(d) is Step.SENT
        d = refreshed(d)
        assert (d.status, d.attempts, d.next_attempt_at, d.last_status_code) == (
            "SENT",
            1,
            None,
            200,
        )
        assert d.sent_at is not None
        ((request, _),) = httpserver.log
        assert request.headers["Idempotency-Key"] == str(d.pk)
        text = request.get_json()["text"]
        assert str(d.pk) in text
        assert "Customer wants 40 seats" in text
        (sent,) = events("assistance.sent")
        assert sent == {
            "request_id": str(d.pk),
            "topic": "sales-x",
            "channel_kind": "slack",
            "channel_name": "sales-x-slack",
            "conversation_id": str(conversation_id),
            "attempts": 1,
        }

    def test_a_500_is_retried_on_the_schedule_then_sent(
        self, slack: Any, submit: Any, httpserver: HTTPServer
    ) -> None:
        httpserver.expect_ordered_request(SECRET_PATH).respond_with_data("rollup_error", status=500)
        httpserver.expect_ordered_request(SECRET_PATH).respond_with_data("ok")
        d = request_for(submit)
        with time_machine.travel(timezone.now(), tick=False) as clock:
            assert attempt(d) is Step.RETRY
            d = refreshed(d)
            assert d.status == "QUEUED"
            assert d.next_attempt_at == timezone.now() + timedelta(seconds=5)
            assert d.last_error == "HTTP 500: rollup_error"
            (scheduled,) = events("assistance.retry_scheduled")
            assert scheduled["attempts"] == 1
            assert scheduled["error"] == "HTTP 500: rollup_error"
            clock.shift(4.9)
            assert attempt(d) is Step.SKIPPED  # not due: nothing is sent
            assert len(httpserver.log) == 1
            clock.shift(0.1)
            assert attempt(d) is Step.SENT
        d = refreshed(d)
        assert (d.status, d.attempts, d.last_error) == ("SENT", 2, "HTTP 500: rollup_error")
        keys = {request.headers["Idempotency-Key"] for request, _ in httpserver.log}
        assert keys == {str(d.pk)}
        history = list(d.history.order_by("n").values_list("n", "outcome", "status_code"))
        assert history == [(1, "retryable", 500), (2, "delivered", 200)]

    @pytest.mark.parametrize("form", ["seconds", "http-date"])
    def test_a_429_waits_for_its_retry_after(
        self, slack: Any, submit: Any, httpserver: HTTPServer, form: str
    ) -> None:
        d = request_for(submit)
        with time_machine.travel(timezone.now().replace(microsecond=0), tick=False):
            now = timezone.now()
            value = (
                "90"
                if form == "seconds"
                else format_datetime(now + timedelta(seconds=90), usegmt=True)
            )
            httpserver.expect_oneshot_request(SECRET_PATH).respond_with_data(
                "rate_limited", status=429, headers={"Retry-After": value}
            )
            assert attempt(d) is Step.RETRY
            assert refreshed(d).next_attempt_at == now + timedelta(seconds=90)

    @pytest.mark.parametrize(
        ("status", "body"),
        [
            (400, "invalid_payload"),
            (403, "action_prohibited"),
            (404, "channel_not_found"),
            (410, "channel_is_archived"),
        ],
    )
    def test_other_4xx_fail_at_once(
        self, slack: Any, submit: Any, httpserver: HTTPServer, status: int, body: str
    ) -> None:
        httpserver.expect_oneshot_request(SECRET_PATH).respond_with_data(body, status=status)
        d = request_for(submit)
        assert attempt(d) is Step.FAILED
        d = refreshed(d)
        assert (d.status, d.attempts, d.next_attempt_at) == ("FAILED", 1, None)
        assert d.last_error == f"HTTP {status}: {body}"
        (failed,) = events("assistance.failed")
        assert failed["error"] == d.last_error
        assert failed["attempts"] == 1

    def test_a_request_held_open_times_out_and_is_retried(
        self, slack: Any, submit: Any, httpserver: HTTPServer, settings: Any
    ) -> None:
        settings.ASSISTANCE_TIMEOUT_SECONDS = 0.5

        def hold(request: Request) -> Response:
            time.sleep(2)
            return Response("ok")

        httpserver.expect_oneshot_request(SECRET_PATH).respond_with_handler(hold)
        d = request_for(submit)
        started = time.monotonic()
        assert attempt(d) is Step.RETRY
        assert time.monotonic() - started < 1.8
        d = refreshed(d)
        assert d.last_error is not None
        assert d.last_error.startswith("timed out")
        no_secret_anywhere(d)

    def test_a_closed_port_is_retried(self, route: Any, submit: Any) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        route("sales-x", "slack", {"url": f"http://127.0.0.1:{port}{SECRET_PATH}"})
        d = request_for(submit)
        assert attempt(d) is Step.RETRY
        d = refreshed(d)
        assert "ConnectError" in (d.last_error or "")
        no_secret_anywhere(d)

    def test_the_attempts_run_out(
        self, slack: Any, submit: Any, httpserver: HTTPServer, settings: Any
    ) -> None:
        settings.ASSISTANCE_RETRY_SCHEDULE = [0, 1]
        httpserver.expect_request(SECRET_PATH).respond_with_data("boom", status=503)
        d = request_for(submit)
        with time_machine.travel(timezone.now(), tick=False) as clock:
            assert attempt(d) is Step.RETRY
            clock.shift(1)
            assert attempt(d) is Step.FAILED
        d = refreshed(d)
        assert (d.status, d.attempts, d.max_attempts) == ("FAILED", 2, 2)
        assert d.last_error == "HTTP 503: boom (attempts exhausted)"
        assert len(events("assistance.failed")) == 1

    def test_no_error_or_log_line_carries_the_url(
        self, slack: Any, submit: Any, httpserver: HTTPServer, caplog: Any, capfd: Any
    ) -> None:
        # A server that echoes the URL, as some proxies do in their error pages.
        httpserver.expect_oneshot_request(SECRET_PATH).respond_with_data(
            f"no hook at {httpserver.url_for(SECRET_PATH)}", status=404
        )
        caplog.set_level(logging.DEBUG)
        # The fake server's own access log is not Parley's.
        caplog.set_level(logging.WARNING, logger="werkzeug")
        d = request_for(submit)
        attempt(d)
        d = refreshed(d)
        assert d.last_error == "HTTP 404: no hook at [redacted]"
        out, err = capfd.readouterr()
        no_secret_anywhere(d, caplog.text, out, err, json.dumps(events("assistance.failed")))


class TestEngine:
    def test_a_task_run_twice_sends_once(
        self, slack: Any, submit: Any, httpserver: HTTPServer
    ) -> None:
        httpserver.expect_request(SECRET_PATH).respond_with_data("ok")
        d = request_for(submit)
        assert attempt(d) is Step.SENT
        assert attempt(d) is Step.SKIPPED
        assert len(httpserver.log) == 1

    def test_a_sweep_racing_the_task_sends_once(
        self, slack: Any, submit: Any, httpserver: HTTPServer, settings: Any, eager: None
    ) -> None:
        httpserver.expect_request(SECRET_PATH).respond_with_data("ok")
        settings.ASSISTANCE_PENDING_GRACE = timedelta(0)
        d = request_for(submit)
        assert services.assistance_sweep().claimed == 1  # the sweep's task sends it
        assert attempt(d) is Step.SKIPPED  # the fast path's task comes late
        assert refreshed(d).status == "SENT"
        assert len(httpserver.log) == 1

    def test_the_sweep_takes_what_is_due_and_not_leased(
        self, slack: Any, submit: Any, httpserver: HTTPServer, eager: None, settings: Any
    ) -> None:
        httpserver.expect_request(SECRET_PATH).respond_with_data("ok")
        waiting = request_for(submit)  # its task has the grace to take it
        assert services.assistance_sweep().claimed == 0
        with time_machine.travel(timezone.now() + settings.ASSISTANCE_PENDING_GRACE, tick=False):
            assert services.assistance_sweep().claimed == 1  # the task never came
        assert refreshed(waiting).status == "SENT"

    def test_a_runner_that_died_leaves_its_delivery_due_after_the_lease(
        self, slack: Any, submit: Any, httpserver: HTTPServer, settings: Any, eager: None
    ) -> None:
        from parley.assistance.services._common import DUE
        from parley.core.duework import claim_one

        httpserver.expect_request(SECRET_PATH).respond_with_data("ok")
        d = request_for(submit)
        now = timezone.now()
        # A runner claims it and dies before sending.
        assert claim_one(
            DUE,
            d.pk,
            now=now,
            lease=settings.ASSISTANCE_LEASE,
            also_when=("status = %s", ["PENDING"]),
            set_values={"status": "QUEUED"},
        )
        assert attempt(d) is Step.SKIPPED  # leased
        with time_machine.travel(
            now + settings.ASSISTANCE_LEASE - timedelta(seconds=1), tick=False
        ):
            assert services.assistance_sweep().claimed == 0
        with time_machine.travel(now + settings.ASSISTANCE_LEASE, tick=False):
            assert services.assistance_sweep().claimed == 1
        assert refreshed(d).status == "SENT"
        assert len(httpserver.log) == 1

    def test_a_late_runner_records_history_but_does_not_reschedule(
        self, slack: Any, submit: Any, httpserver: HTTPServer
    ) -> None:
        from parley.assistance.channels import Outcome
        from parley.assistance.services.record import attempt_record

        d = request_for(submit)
        httpserver.expect_request(SECRET_PATH).respond_with_data("ok")
        assert attempt(d) is Step.SENT
        report = attempt_record(
            refreshed(d),
            uuid.uuid4(),
            Outcome.retryable("late"),
            started=timezone.now(),
            ended=timezone.now(),
            kind="slack",
        )
        assert report.step is Step.RECORDED
        d = refreshed(d)
        assert (d.status, d.attempts) == ("SENT", 2)

    def test_the_rate_limit_delays_instead_of_failing(
        self, route: Any, submit: Any, httpserver: HTTPServer
    ) -> None:
        channel = route("sales-x", "slack", {"url": httpserver.url_for(SECRET_PATH)})
        channel.rate_per_second, channel.burst = 1.0, 1
        channel.save()
        httpserver.expect_request(SECRET_PATH).respond_with_data("ok")
        first, second = request_for(submit), request_for(submit)
        with time_machine.travel(timezone.now(), tick=False) as clock:
            assert attempt(first) is Step.SENT
            assert attempt(second) is Step.DEFERRED
            second = refreshed(second)
            assert (second.status, second.attempts) == ("QUEUED", 0)
            assert second.next_attempt_at == timezone.now() + timedelta(seconds=1)
            assert second.lease_token is None
            clock.shift(1)
            assert attempt(second) is Step.SENT
        assert len(httpserver.log) == 2

    def test_slack_allows_a_burst_then_one_a_second_by_default(
        self, submit: Any, httpserver: HTTPServer
    ) -> None:
        from parley.assistance.tests.conftest import make_channel, make_topic

        make_topic("sales-x", make_channel("burst", "slack", {"url": httpserver.url_for("/b")}))
        httpserver.expect_request("/b").respond_with_data("ok")
        requests = [request_for(submit) for _ in range(5)]
        with time_machine.travel(timezone.now(), tick=False) as clock:
            start = timezone.now()
            assert [attempt(r) for r in requests] == [Step.SENT] * 3 + [Step.DEFERRED] * 2
            due = {refreshed(r).next_attempt_at for r in requests[3:]}
            assert due == {start + timedelta(seconds=1)}
            clock.shift(1)
            # The waiting sends take the slots in turn, one a second.
            assert [attempt(r) for r in requests[3:]] == [Step.SENT, Step.DEFERRED]
            clock.shift(1)
            assert attempt(requests[4]) is Step.SENT
        assert len(httpserver.log) == 5

    def test_an_operator_retries_a_failed_request(
        self, slack: Any, submit: Any, httpserver: HTTPServer
    ) -> None:
        httpserver.expect_ordered_request(SECRET_PATH).respond_with_data(
            "channel_not_found", status=404
        )
        httpserver.expect_ordered_request(SECRET_PATH).respond_with_data("ok")
        d = request_for(submit)
        assert attempt(d) is Step.FAILED
        retried = services.delivery_retry(delivery_id=d.pk)
        assert (retried.status, retried.max_attempts) == ("QUEUED", 9)
        assert events("assistance.retry_scheduled")[-1]["by_operator"] is True
        assert attempt(d) is Step.SENT
        with pytest.raises(DeliveryNotFailed):
            services.delivery_retry(delivery_id=d.pk)

    def test_the_admin_action_retries_failed_requests(
        self, route: Any, submit: Any, admin_client: Any
    ) -> None:
        d = request_for(submit, topic="sales")  # sales-slack has no URL: FAILED at once
        assert attempt(d) is Step.FAILED
        assert refreshed(d).last_error == "channel not configured"
        response = admin_client.post(
            "/admin/assistance/delivery/",
            {"action": "retry_failed", "_selected_action": [str(d.pk)]},
        )
        assert response.status_code == 302
        assert refreshed(d).status == "QUEUED"

    def test_an_inactive_channel_fails_its_stored_requests(self, slack: Any, submit: Any) -> None:
        d = request_for(submit)
        slack.active = False
        slack.save()
        assert attempt(d) is Step.FAILED
        assert refreshed(d).last_error == "channel inactive"


class TestWebhookAndApprise:
    def test_a_webhook_is_signed_and_carries_one_key(
        self, route: Any, submit: Any, httpserver: HTTPServer
    ) -> None:
        route("hook", "webhook", {"url": httpserver.url_for("/in"), "secret": WEBHOOK_SECRET})
        httpserver.expect_request("/in").respond_with_data("", status=204)
        d = request_for(submit, topic="hook", metadata={"plan": "pro"})
        assert attempt(d) is Step.SENT
        ((request, _),) = httpserver.log
        headers = {k.lower(): v for k, v in request.headers.items()}
        assert headers["webhook-id"] == headers["idempotency-key"] == str(d.pk)
        payload = Webhook(WEBHOOK_SECRET).verify(request.get_data(), headers)
        assert payload["type"] == "assistance.requested"
        assert payload["data"]["id"] == str(d.pk)
        assert payload["data"]["metadata"] == {"plan": "pro"}
        assert payload["data"]["description"] == "Customer wants 40 seats"

    def test_apprise_delivers_through_its_url_with_its_retries_off(
        self, route: Any, submit: Any, httpserver: HTTPServer
    ) -> None:
        port = httpserver.port
        route("ping", "apprise", {"url": f"json://127.0.0.1:{port}/notify"})
        httpserver.expect_ordered_request("/notify").respond_with_data("no", status=500)
        httpserver.expect_ordered_request("/notify").respond_with_data("ok")
        d = request_for(submit, topic="ping")
        with time_machine.travel(timezone.now(), tick=False) as clock:
            assert attempt(d) is Step.RETRY
            assert len(httpserver.log) == 1  # Apprise did not retry on its own
            clock.shift(5)
            assert attempt(d) is Step.SENT
        body = httpserver.log[1][0].get_json()
        assert str(d.pk) in body["message"]


def test_a_burst_publishes_one_task_until_it_starts(settings: Any) -> None:
    """The coalesced kick: one delivery task on its way at a time (needs the shared Redis cache)."""
    import redis

    from parley.assistance.services._common import KICK_KEY, _redis, kick, kick_received

    client = _redis()
    if client is None or not settings.CELERY_BROKER_URL.startswith("redis"):
        pytest.skip("coalescing needs the cache and the broker in Redis")
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    client.delete(KICK_KEY)
    before = broker.llen("celery")
    kick()
    kick()
    kick()
    assert broker.llen("celery") == before + 1
    kick_received()  # the task started: the next request publishes again
    kick()
    assert broker.llen("celery") == before + 2
    client.delete(KICK_KEY)


def test_a_burst_is_delivered_in_one_batch_with_each_outcome_recorded(
    route: Any, submit: Any, httpserver: HTTPServer
) -> None:
    route("ok", "slack", {"url": httpserver.url_for("/ok")})
    route("busy", "slack", {"url": httpserver.url_for("/busy")})
    httpserver.expect_request("/ok").respond_with_data("ok")
    httpserver.expect_request("/busy").respond_with_data("busy", status=503)
    sent = [request_for(submit, topic="ok") for _ in range(4)]
    retried = [request_for(submit, topic="busy") for _ in range(2)]
    assert services.deliveries_pending_run() == 6
    for d in sent:
        d = refreshed(d)
        assert (d.status, d.attempts, d.history.count()) == ("SENT", 1, 1)
    for d in retried:
        d = refreshed(d)
        assert (d.status, d.attempts, d.last_error) == ("QUEUED", 1, "HTTP 503: busy")
    assert len(events("assistance.sent")) == 4
    assert {e["attempts"] for e in events("assistance.retry_scheduled")} == {1}
    assert services.deliveries_pending_run() == 0  # nothing pending, the retries not due
