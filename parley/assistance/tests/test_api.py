"""The assistance API through the test client: status, JSON body, database state (A-1 to A-3,
A-8, A-9, A-12)."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.test import Client
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from parley.assistance.models import Channel, Delivery, IdempotencyKey, Topic
from parley.assistance.tests.conftest import delivery
from parley.outbox.models import OutboxEvent

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("sql_path")]

SALES = {"topic": "sales", "description": "Customer wants 40 seats"}
REPRESENTATION = [
    "id",
    "topic",
    "channel",
    "status",
    "attempts",
    "max_attempts",
    "last_error",
    "next_attempt_at",
    "sent_at",
    "created_at",
    "updated_at",
]


def problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    return body


class TestSubmit:
    def test_a_request_is_accepted_with_its_location_and_representation(self, submit: Any) -> None:
        response = submit(
            {**SALES, "conversation_id": str(uuid.uuid4()), "metadata": {"seats": 40}}
        )
        assert response.status_code == 202
        body = response.json()
        assert list(body) == REPRESENTATION
        assert response["Location"] == f"/assistance-requests/{body['id']}/"
        assert body["topic"] == "sales"
        assert body["channel"] == {"kind": "slack", "name": "sales-slack"}
        assert body["status"] == "PENDING"
        assert (body["attempts"], body["max_attempts"], body["last_error"]) == (0, 8, None)
        stored = delivery(response)
        assert stored.description == "Customer wants 40 seats"
        assert stored.metadata == {"seats": 40}
        event = OutboxEvent.objects.get(type="assistance.requested")
        assert event.data["request_id"] == body["id"]
        assert event.data["channel_kind"] == "slack"

    def test_the_path_without_the_slash_works_too(self, submit: Any) -> None:
        assert submit(SALES, path="/assistance-requests").status_code == 202

    def test_topics_match_trimmed_and_ignoring_case(self, submit: Any) -> None:
        response = submit({"topic": "  PriCing ", "description": "A quote please"})
        assert response.status_code == 202
        assert response.json()["channel"] == {"kind": "email", "name": "pricing-email"}

    def test_unknown_fields_are_ignored(self, submit: Any) -> None:
        assert submit({**SALES, "priority": "high"}).status_code == 202

    @pytest.mark.parametrize("topic", ["billing", "sales2", ""])
    def test_an_unknown_topic_is_refused_and_nothing_is_stored(
        self, submit: Any, topic: str
    ) -> None:
        response = submit({"topic": topic or "   ", "description": "x"})
        body = problem(response, 400, "unknown_topic" if topic else "invalid_payload")
        assert body["status"] == 400
        assert not Delivery.objects.exists()
        assert not OutboxEvent.objects.filter(type__startswith="assistance.").exists()

    def test_an_inactive_topic_or_channel_is_unknown(self, submit: Any) -> None:
        Topic.objects.filter(slug="sales").update(active=False)
        problem(submit(SALES), 400, "unknown_topic")
        Topic.objects.filter(slug="sales").update(active=True)
        Channel.objects.filter(name="sales-slack").update(active=False)
        problem(submit(SALES), 400, "unknown_topic")
        assert not Delivery.objects.exists()

    @pytest.mark.parametrize(
        ("payload", "field"),
        [
            ({"topic": "sales"}, "description"),
            ({"description": "x"}, "topic"),
            ({"topic": "sales", "description": ""}, "description"),
            ({"topic": "sales", "description": "   "}, "description"),
            ({"topic": "sales", "description": "x" * 5001}, "description"),
            ({"topic": "sales", "description": "nul \x00 here"}, "description"),
            ({"topic": "sales", "description": 12}, "description"),
            ({"topic": ["sales"], "description": "x"}, "topic"),
            ({**SALES, "conversation_id": "not-a-uuid"}, "conversation_id"),
            ({**SALES, "metadata": ["a"]}, "metadata"),
            ({**SALES, "metadata": {"big": "x" * 17000}}, "metadata"),
            ({**SALES, "metadata": {"nul": "\x00"}}, "metadata"),
        ],
    )
    def test_bad_fields_get_400_with_the_field_named(
        self, submit: Any, payload: dict[str, Any], field: str
    ) -> None:
        body = problem(submit(payload), 400, "invalid_payload")
        assert field in body["errors"]
        assert not Delivery.objects.exists()

    def test_5000_characters_are_accepted(self, submit: Any) -> None:
        assert submit({"topic": "sales", "description": "é" * 5000}).status_code == 202

    @pytest.mark.parametrize("raw", ["not json", "[1, 2]", '"text"', "", "{"])
    def test_bodies_that_are_not_an_object_get_400(self, submit: Any, raw: str) -> None:
        problem(submit(raw), 400, "invalid_payload")

    def test_other_media_types_get_415(self, client: Client) -> None:
        response = client.post(
            "/assistance-requests/", data="topic=sales", content_type="text/plain"
        )
        problem(response, 415, "unsupported_media_type")

    def test_an_oversized_body_gets_413(self, submit: Any, settings: Any) -> None:
        settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
        problem(submit({"topic": "sales", "description": "x" * 2000}), 413, "payload_too_large")

    def test_a_signature_is_required_when_webhook_secret_is_set(
        self, submit: Any, settings: Any
    ) -> None:
        secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        settings.WEBHOOK_SECRET = secret
        problem(submit(SALES), 401, "invalid_signature")
        body = json.dumps(SALES)
        now = timezone.now()
        headers = {
            "webhook-id": "msg_1",
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(secret).sign("msg_1", now, body),
        }
        assert submit(body, **headers).status_code == 202


class TestIdempotency:
    def test_the_same_key_and_body_answers_the_first_answer_and_stores_nothing(
        self, submit: Any
    ) -> None:
        first = submit(SALES, **{"Idempotency-Key": '"order-1"'})
        again = submit(SALES, **{"Idempotency-Key": "order-1"})
        assert again.status_code == 202
        assert again.json() == first.json()
        assert again["Location"] == first["Location"]
        assert Delivery.objects.count() == 1
        assert OutboxEvent.objects.filter(type="assistance.requested").count() == 1

    def test_the_same_key_with_another_body_is_422(self, submit: Any) -> None:
        submit(SALES, **{"Idempotency-Key": "order-1"})
        problem(
            submit({**SALES, "description": "other"}, **{"Idempotency-Key": "order-1"}),
            422,
            "idempotency_key_reused",
        )
        assert Delivery.objects.count() == 1

    def test_unknown_fields_do_not_make_another_body(self, submit: Any) -> None:
        first = submit(SALES, **{"Idempotency-Key": "k"})
        assert submit({**SALES, "extra": 1}, **{"Idempotency-Key": "k"}).json() == first.json()

    def test_keys_are_kept_24_hours(self, submit: Any) -> None:
        first = submit(SALES, **{"Idempotency-Key": "k"})
        with time_machine.travel(timezone.now() + timedelta(hours=23, minutes=59)):
            assert submit(SALES, **{"Idempotency-Key": "k"}).json()["id"] == first.json()["id"]
        with time_machine.travel(timezone.now() + timedelta(hours=24, minutes=1)):
            later = submit({**SALES, "description": "new"}, **{"Idempotency-Key": "k"})
            assert later.status_code == 202
            assert later.json()["id"] != first.json()["id"]
        assert IdempotencyKey.objects.get().delivery_id == uuid.UUID(later.json()["id"])

    @pytest.mark.parametrize("key", ["", "   ", "a" * 256, "tab\there", "é"])
    def test_a_malformed_key_is_400(self, submit: Any, key: str) -> None:
        problem(submit(SALES, **{"Idempotency-Key": key}), 400, "invalid_idempotency_key")

    def test_a_refused_request_keeps_no_key(self, submit: Any) -> None:
        problem(
            submit({"topic": "nope", "description": "x"}, **{"Idempotency-Key": "k"}),
            400,
            "unknown_topic",
        )
        assert not IdempotencyKey.objects.exists()


class TestRead:
    def test_a_request_reads_with_its_history(
        self, submit: Any, client: Client, django_assert_num_queries: Any
    ) -> None:
        created = submit(SALES)
        with django_assert_num_queries(2):
            response = client.get(created["Location"])
        assert response.status_code == 200
        body = response.json()
        assert list(body) == [*REPRESENTATION, "history"]
        assert body["history"] == []

    @pytest.mark.parametrize("request_id", [str(uuid.uuid4()), "not-a-uuid"])
    def test_an_unknown_or_malformed_id_is_404(self, client: Client, request_id: str) -> None:
        problem(client.get(f"/assistance-requests/{request_id}/"), 404, "not_found")

    def test_the_read_needs_the_token_when_it_is_set(
        self, submit: Any, client: Client, settings: Any
    ) -> None:
        location = submit(SALES)["Location"]
        settings.API_TOKEN = "t0ken"
        problem(client.get(location), 401, "not_authenticated")
        problem(
            client.get(location, headers={"Authorization": "Bearer nope"}), 401, "not_authenticated"
        )
        assert client.get(location, headers={"Authorization": "Bearer t0ken"}).status_code == 200


class TestManagement:
    AUTH = {"Authorization": "Bearer t0ken"}

    @pytest.fixture(autouse=True)
    def _token(self, settings: Any) -> None:
        settings.API_TOKEN = "t0ken"

    def call(
        self,
        client: Client,
        method: str,
        path: str,
        payload: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        return getattr(client, method)(
            path,
            data=json.dumps(payload) if payload is not None else None,
            content_type="application/json",
            headers=self.AUTH if headers is None else headers,
        )

    @pytest.mark.parametrize("path", ["/assistance-topics/", "/assistance-channels/"])
    def test_management_is_refused_without_api_token_on_the_server(
        self, client: Client, settings: Any, path: str
    ) -> None:
        settings.API_TOKEN = ""
        problem(self.call(client, "get", path), 403, "permission_denied")
        problem(self.call(client, "post", path, {"name": "x"}), 403, "permission_denied")

    @pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}])
    def test_a_missing_or_wrong_token_is_401(self, client: Client, headers: dict[str, str]) -> None:
        problem(
            self.call(client, "get", "/assistance-channels/", headers=headers),
            401,
            "not_authenticated",
        )
        problem(
            self.call(
                client, "patch", "/assistance-topics/sales/", {"active": False}, headers=headers
            ),
            401,
            "not_authenticated",
        )

    @pytest.mark.parametrize("channel", ["pricing\x00email", "no such channel", 12])
    def test_a_topic_naming_a_channel_that_cannot_exist_is_a_400(
        self, client: Client, channel: Any
    ) -> None:
        """Found by the fuzzer: a NUL in the channel's name reached PostgreSQL (a 500)."""
        response = self.call(
            client, "post", "/assistance-topics/", {"slug": "s", "name": "S", "channel": channel}
        )
        body = problem(response, 400, "invalid_payload")
        assert list(body["errors"]) == ["channel"]
        assert not Topic.objects.filter(slug="s").exists()

    @pytest.mark.parametrize("path", ["/assistance-topics/a%00b/", "/assistance-channels/a%00b/"])
    def test_a_nul_in_a_path_is_not_found(self, client: Client, path: str) -> None:
        problem(self.call(client, "get", path), 404, "not_found")

    def test_the_defaults_are_listed(self, client: Client) -> None:
        topics = self.call(client, "get", "/assistance-topics/").json()
        assert [(t["slug"], t["channel"], t["active"]) for t in topics] == [
            ("pricing", "pricing-email", True),
            ("sales", "sales-slack", True),
        ]
        channels = self.call(client, "get", "/assistance-channels/").json()
        assert {c["name"]: (c["kind"], c["configured"]) for c in channels} == {
            "pricing-email": ("email", True),  # the file backend's default recipient
            "sales-slack": ("slack", False),  # no ASSISTANCE_SLACK_WEBHOOK_URL
        }

    def test_a_channel_and_a_topic_are_created_and_the_config_never_comes_back(
        self, client: Client, submit: Any
    ) -> None:
        config = {"url": "https://hooks.example.com/services/SECRET-PATH"}
        response = self.call(
            client,
            "post",
            "/assistance-channels/",
            {"name": "support-slack", "kind": "slack", "config": config},
        )
        assert response.status_code == 201
        assert "config" not in response.json()
        assert response.json()["configured"] is True
        assert "SECRET-PATH" not in response.content.decode()
        assert (
            "SECRET-PATH" not in self.call(client, "get", "/assistance-channels/").content.decode()
        )
        assert Channel.objects.get(name="support-slack").config == config
        response = self.call(
            client,
            "post",
            "/assistance-topics/",
            {"slug": " Support ", "name": "Support", "channel": "support-slack"},
        )
        assert response.status_code == 201
        assert response.json()["slug"] == "support"
        assert (
            submit({"topic": "SUPPORT", "description": "help"}).json()["channel"]["name"]
            == "support-slack"
        )

    def test_the_config_is_encrypted_at_rest(self, client: Client) -> None:
        from django.db import connection

        self.call(
            client,
            "post",
            "/assistance-channels/",
            {"name": "hook", "kind": "slack", "config": {"url": "https://h.example/SECRET"}},
        )
        with connection.cursor() as cursor:
            cursor.execute("SELECT config FROM assistance_channel WHERE name = 'hook'")
            (stored,) = cursor.fetchone()
        assert stored.startswith("fernet:")
        assert "SECRET" not in stored

    @pytest.mark.parametrize(
        ("kind", "config", "field"),
        [
            ("slack", {"url": "not a url"}, "config.url"),
            ("slack", {"url": "ftp://example.com/x"}, "config.url"),
            ("slack", {}, None),
            ("email", {"to": ["not-an-address"]}, "config.to.0"),
            ("email", {"to": []}, "config.to"),
            ("webhook", {"url": "https://example.com/h", "secret": "plain"}, "config.secret"),
            ("webhook", {"url": "https://example.com/h"}, "config.secret"),
            ("apprise", {"url": "nonsense"}, "config.url"),
            ("pigeon", {"url": "x"}, "kind"),
            ("slack", "a string", "config"),
        ],
    )
    def test_a_config_that_does_not_fit_its_kind_is_400(
        self, client: Client, kind: str, config: Any, field: str | None
    ) -> None:
        response = self.call(
            client, "post", "/assistance-channels/", {"name": "c", "kind": kind, "config": config}
        )
        if field is None:
            assert response.status_code == 201  # {}: the environment's defaults
            return
        body = problem(response, 400, "invalid_payload")
        assert any(key.startswith(field) for key in body["errors"]), body["errors"]
        assert not Channel.objects.filter(name="c").exists()

    def test_channel_names_are_unique(self, client: Client) -> None:
        body = problem(
            self.call(
                client, "post", "/assistance-channels/", {"name": "sales-slack", "kind": "slack"}
            ),
            400,
            "invalid_payload",
        )
        assert "name" in body["errors"]

    def test_patch_changes_a_topic_and_a_channel(self, client: Client, submit: Any) -> None:
        response = self.call(
            client, "patch", "/assistance-topics/sales/", {"channel": "pricing-email"}
        )
        assert response.json()["channel"] == "pricing-email"
        assert submit(SALES).json()["channel"]["kind"] == "email"
        response = self.call(client, "patch", "/assistance-topics/sales/", {"active": False})
        assert response.json()["active"] is False
        problem(submit(SALES), 400, "unknown_topic")
        response = self.call(
            client,
            "patch",
            "/assistance-channels/sales-slack/",
            {"config": {"url": "https://hooks.example.com/T/B/X"}},
        )
        assert response.status_code == 200
        assert response.json()["configured"] is True
        # A new kind is checked against the current config.
        body = problem(
            self.call(client, "patch", "/assistance-channels/sales-slack/", {"kind": "email"}),
            400,
            "invalid_payload",
        )
        assert "config.to" in body["errors"]
        problem(
            self.call(client, "patch", "/assistance-topics/nope/", {"active": False}),
            404,
            "not_found",
        )
        problem(
            self.call(client, "patch", "/assistance-channels/nope/", {"active": False}),
            404,
            "not_found",
        )
        body = problem(
            self.call(client, "patch", "/assistance-topics/sales/", {"channel": "nope"}),
            400,
            "invalid_payload",
        )
        assert "channel" in body["errors"]


def test_swagger_is_served_at_both_addresses(client: Client) -> None:
    for path in ("/swagger/", "/api/docs/"):
        response = client.get(path)
        assert response.status_code == 200
        assert b"swagger" in response.content.lower()


def test_the_schema_holds_no_channel_config_in_any_response(client: Client) -> None:
    schema = client.get("/api/schema/?format=json").json()
    for name, component in schema["components"]["schemas"].items():
        if name.startswith("Channel") and not name.endswith("Request"):
            assert "config" not in component.get("properties", {}), name


def test_the_readme_sample_is_accepted(submit: Any) -> None:
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    (body,) = re.findall(r"--data '(\{\"topic\".*?\})'", readme)
    response = submit(body, **{"Idempotency-Key": "8e03978e-40d5-43e8-bc93-6894a57f9324"})
    assert response.status_code == 202
    assert response.json()["channel"] == {"kind": "email", "name": "pricing-email"}


def test_render_request_matches_the_serializer(submit: Any) -> None:
    from parley.assistance.serializers import RequestOutput, render_request

    d = delivery(submit({**SALES, "conversation_id": str(uuid.uuid4())}))
    d.last_error, d.sent_at = "HTTP 500", d.created_at
    assert render_request(d) == dict(RequestOutput(d).data)
