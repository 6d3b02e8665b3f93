"""The admin edits a tenant's close settings (T-1) and refuses bad ones."""

from __future__ import annotations

import uuid
from datetime import time
from typing import Any

import pytest

from parley.tenants.models import Tenant
from parley.tenants.services import tenant_ensure

pytestmark = pytest.mark.django_db


@pytest.fixture
def tenant() -> Tenant:
    return Tenant.objects.get(pk=tenant_ensure(tenant_id=uuid.uuid4()))


def change(admin_client: Any, tenant: Tenant, **fields: str) -> Any:
    data = {"name": "Acme", "time_zone": "UTC", "idle_close_after": "", "daily_close_at": ""}
    return admin_client.post(
        f"/admin/tenants/tenant/{tenant.pk}/change/", {**data, **fields}, follow=False
    )


def test_close_settings_are_shown_and_saved(admin_client: Any, tenant: Tenant) -> None:
    response = change(
        admin_client,
        tenant,
        time_zone="America/Sao_Paulo",
        idle_close_after="900",
        daily_close_at="18:30",
    )

    assert response.status_code == 302
    tenant.refresh_from_db()
    assert (tenant.time_zone, tenant.idle_close_after, tenant.daily_close_at) == (
        "America/Sao_Paulo",
        900,
        time(18, 30),
    )
    assert "America/Sao_Paulo" in admin_client.get("/admin/tenants/tenant/").content.decode()
    page = admin_client.get(f"/admin/tenants/tenant/{tenant.pk}/change/").content.decode()
    assert 'value="18:30"' in page
    assert 'value="900"' in page


def test_clearing_a_setting_turns_it_off(admin_client: Any, tenant: Tenant) -> None:
    Tenant.objects.filter(pk=tenant.pk).update(idle_close_after=60, daily_close_at=time(9, 0))

    assert change(admin_client, tenant).status_code == 302
    tenant.refresh_from_db()
    assert (tenant.idle_close_after, tenant.daily_close_at) == (None, None)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("time_zone", "Mars/Olympus_Mons", "is not an IANA time zone"),
        ("time_zone", "", "This field is required"),
        ("idle_close_after", "0", "greater than or equal to 1"),
        ("idle_close_after", "-5", "greater than or equal to 1"),
        ("daily_close_at", "25:00", "Enter a valid time"),
        ("daily_close_at", "18:30:15", "Enter a valid time"),
        ("daily_close_at", "6pm", "Enter a valid time"),
    ],
)
def test_bad_settings_are_refused_with_a_message_and_nothing_is_saved(
    admin_client: Any, tenant: Tenant, field: str, value: str, message: str
) -> None:
    response = change(admin_client, tenant, **{field: value})

    assert response.status_code == 200  # the form again, with the error
    assert message in response.content.decode()
    tenant.refresh_from_db()
    assert (tenant.name, tenant.time_zone, tenant.idle_close_after) == ("", "UTC", None)
