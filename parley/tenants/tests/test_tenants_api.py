"""GET and PUT /tenants/{id}/ (Q-1): the shared validation, the admin form, data.tenant_id."""

from __future__ import annotations

import uuid
from datetime import time
from typing import Any

import pytest
from django.test import Client, override_settings

from parley.conversations.models import Conversation
from parley.tenants.admin import TenantForm
from parley.tenants.models import Tenant
from tests.payloads import new_conversation, new_conversation_for

pytestmark = pytest.mark.django_db

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PROBLEM = "application/problem+json"


def put(client: Client, tenant_id: Any, body: Any, **headers: str) -> Any:
    return client.put(
        f"/tenants/{tenant_id}/", data=body, content_type="application/json", headers=headers
    )


def test_put_creates_an_unknown_tenant_with_201_then_updates_with_200(client: Client) -> None:
    tenant_id = uuid.uuid4()
    created = put(client, tenant_id, {"name": "Acme", "time_zone": "America/Sao_Paulo"})
    assert created.status_code == 201
    assert created.json() == {
        "id": str(tenant_id),
        "name": "Acme",
        "time_zone": "America/Sao_Paulo",
        "idle_close_after": None,
        "daily_close_at": None,
        "created_at": created.json()["created_at"],
        "updated_at": created.json()["updated_at"],
    }
    updated = put(client, tenant_id, {"idle_close_after": 3600, "daily_close_at": "23:30"})
    assert updated.status_code == 200
    body = updated.json()
    # Only the fields given change.
    assert (body["name"], body["time_zone"]) == ("Acme", "America/Sao_Paulo")
    assert (body["idle_close_after"], body["daily_close_at"]) == (3600, "23:30")
    tenant = Tenant.objects.get(pk=tenant_id)
    assert tenant.daily_close_at == time(23, 30)
    assert tenant.idle_close_after == 3600
    off = put(client, tenant_id, {"idle_close_after": None, "daily_close_at": None})
    assert off.status_code == 200
    assert (off.json()["idle_close_after"], off.json()["daily_close_at"]) == (None, None)


def test_a_new_tenant_without_a_zone_gets_the_default(client: Client, settings: Any) -> None:
    settings.DEFAULT_TENANT_TIME_ZONE = "Europe/Lisbon"
    response = put(client, uuid.uuid4(), {})
    assert response.status_code == 201
    assert response.json()["time_zone"] == "Europe/Lisbon"


def test_get_reads_a_tenant_and_404s_an_unknown_or_malformed_id(client: Client) -> None:
    tenant_id = uuid.uuid4()
    put(client, tenant_id, {"name": "Acme"})
    assert client.get(f"/tenants/{tenant_id}/").json()["name"] == "Acme"
    for missing in (uuid.uuid4(), "not-a-uuid"):
        response = client.get(f"/tenants/{missing}/")
        assert response.status_code == 404
        assert response["Content-Type"] == PROBLEM
        assert response.json()["code"] == "not_found"
    # The default tenant exists from the start.
    default = client.get("/tenants/00000000-0000-0000-0000-000000000000/")
    assert default.status_code == 200


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "", "UTC+3", "../../etc/passwd", 42])
def test_an_unknown_time_zone_is_400_invalid_time_zone_and_nothing_is_written(
    client: Client, zone: Any
) -> None:
    tenant_id = uuid.uuid4()
    response = put(client, tenant_id, {"name": "X", "time_zone": zone})
    assert response.status_code == 400
    assert response["Content-Type"] == PROBLEM
    assert response.json()["code"] == "invalid_time_zone"
    assert "time_zone" in response.json()["errors"]
    assert not Tenant.objects.filter(pk=tenant_id).exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"idle_close_after": 0}, "idle_close_after"),
        ({"idle_close_after": -5}, "idle_close_after"),
        ({"idle_close_after": 1.5}, "idle_close_after"),
        ({"idle_close_after": "60"}, "idle_close_after"),
        ({"idle_close_after": True}, "idle_close_after"),
        ({"daily_close_at": "24:00"}, "daily_close_at"),
        ({"daily_close_at": "7:30"}, "daily_close_at"),
        ({"daily_close_at": "07:30:00"}, "daily_close_at"),
        ({"daily_close_at": 730}, "daily_close_at"),
        ({"name": 5}, "name"),
        ({"name": "x" * 201}, "name"),
    ],
)
def test_other_bad_values_are_400_invalid_payload(
    client: Client, body: dict[str, Any], field: str
) -> None:
    tenant_id = uuid.uuid4()
    response = put(client, tenant_id, body)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_payload"
    assert list(response.json()["errors"]) == [field]
    assert not Tenant.objects.filter(pk=tenant_id).exists()


@pytest.mark.parametrize("raw", [b"[1, 2]", b"not json", b'"text"'])
def test_a_body_that_is_not_an_object_is_400(client: Client, raw: bytes) -> None:
    response = client.put(f"/tenants/{uuid.uuid4()}/", data=raw, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_payload"


@override_settings(API_TOKEN=TOKEN)
def test_the_tenant_api_needs_the_token(client: Client) -> None:
    tenant_id = uuid.uuid4()
    assert client.get(f"/tenants/{tenant_id}/").status_code == 401
    assert put(client, tenant_id, {"name": "X"}).status_code == 401
    assert not Tenant.objects.filter(pk=tenant_id).exists()
    assert put(client, tenant_id, {"name": "X"}, **AUTH).status_code == 201
    assert client.get(f"/tenants/{tenant_id}/", headers=AUTH).status_code == 200


def test_the_admin_form_applies_the_same_rules() -> None:
    base = {"id": str(uuid.uuid4()), "name": "A"}
    bad_zone = TenantForm(data={**base, "time_zone": "Nowhere/City"})
    assert not bad_zone.is_valid()
    assert "time_zone" in bad_zone.errors
    zero = TenantForm(data={**base, "time_zone": "UTC", "idle_close_after": "0"})
    assert not zero.is_valid()
    assert "idle_close_after" in zero.errors
    seconds = TenantForm(data={**base, "time_zone": "UTC", "daily_close_at": "07:30:15"})
    assert not seconds.is_valid()
    assert "daily_close_at" in seconds.errors
    good = TenantForm(
        data={
            **base,
            "time_zone": "Australia/Lord_Howe",
            "idle_close_after": "60",
            "daily_close_at": "02:30",
        }
    )
    assert good.is_valid(), good.errors
    tenant = good.save()
    assert (tenant.idle_close_after, tenant.daily_close_at) == (60, time(2, 30))


def test_new_conversation_takes_an_optional_tenant_created_with_the_defaults(
    post_event: Any,
) -> None:
    tenant_id, conversation_id = uuid.uuid4(), uuid.uuid4()
    response = post_event(new_conversation_for(conversation_id, tenant_id))
    assert response.status_code == 201
    assert response.json()["tenant_id"] == str(tenant_id)
    assert Conversation.objects.get(pk=conversation_id).tenant_id == tenant_id
    assert Tenant.objects.get(pk=tenant_id).time_zone == "UTC"
    # Seed 000 clients see no change: no tenant_id, the default tenant.
    plain = uuid.uuid4()
    assert post_event(new_conversation(plain)).json()["tenant_id"] == (
        "00000000-0000-0000-0000-000000000000"
    )


def test_a_malformed_tenant_id_on_new_conversation_is_400(post_event: Any) -> None:
    payload = new_conversation(uuid.uuid4())
    payload["data"]["tenant_id"] = "acme"
    response = post_event(payload)
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["data.tenant_id"]
