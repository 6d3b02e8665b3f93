"""The admin: channel configs are write-only and shown masked (A-9), checked on save (A-3)."""

from __future__ import annotations

from typing import Any

import pytest

from parley.assistance.crypto import EncryptedConfigField
from parley.assistance.models import Channel
from parley.assistance.tests.conftest import make_channel

pytestmark = pytest.mark.django_db

SECRET_URL = "https://hooks.slack.com/services/T0000/B0000/S3CR3TT0K3N"


def form(channel: Channel, **changes: Any) -> dict[str, Any]:
    return {
        "name": channel.name,
        "kind": channel.kind,
        "active": "on",
        "rate_per_second": "",
        "burst": "",
        "new_config": "",
        **changes,
    }


def test_the_config_is_never_in_the_pages_only_a_mask(admin_client: Any) -> None:
    channel = make_channel("support", "slack", {"url": SECRET_URL})
    for path in ("/admin/assistance/channel/", f"/admin/assistance/channel/{channel.pk}/change/"):
        page = admin_client.get(path).content.decode()
        assert "S3CR3TT0K3N" not in page
        assert "https://hooks.slack.com/…0K3N" in page


def test_an_empty_field_keeps_the_config_and_a_new_one_replaces_it(admin_client: Any) -> None:
    channel = make_channel("support", "slack", {"url": SECRET_URL})
    path = f"/admin/assistance/channel/{channel.pk}/change/"
    assert admin_client.post(path, form(channel, active="")).status_code == 302
    channel.refresh_from_db()
    assert (channel.config, channel.active) == ({"url": SECRET_URL}, False)
    new = '{"url": "https://hooks.slack.com/services/T1/B1/OTHER"}'
    assert admin_client.post(path, form(channel, new_config=new)).status_code == 302
    channel.refresh_from_db()
    assert channel.config == {"url": "https://hooks.slack.com/services/T1/B1/OTHER"}


@pytest.mark.parametrize(
    ("kind", "config", "message"),
    [
        ("slack", '{"url": "not a url"}', "http or https URL"),
        ("slack", "{not json", "Not valid JSON"),
        ("email", "", "This field is required"),  # the slack config does not fit email
    ],
)
def test_a_config_that_does_not_fit_its_kind_is_refused(
    admin_client: Any, kind: str, config: str, message: str
) -> None:
    channel = make_channel("support", "slack", {"url": SECRET_URL})
    path = f"/admin/assistance/channel/{channel.pk}/change/"
    response = admin_client.post(path, form(channel, kind=kind, new_config=config))
    assert response.status_code == 200
    assert message in response.content.decode()
    channel.refresh_from_db()
    assert (channel.kind, channel.config) == ("slack", {"url": SECRET_URL})


def test_a_channel_is_added_with_its_config_checked(admin_client: Any) -> None:
    response = admin_client.post(
        "/admin/assistance/channel/add/",
        {
            "name": "ops-mail",
            "kind": "email",
            "active": "on",
            "new_config": '{"to": ["ops@example.com"]}',
        },
    )
    assert response.status_code == 302
    assert Channel.objects.get(name="ops-mail").config == {"to": ["ops@example.com"]}


def test_a_key_rotation_re_encrypts_every_config(settings: Any) -> None:
    from io import StringIO

    from cryptography.fernet import Fernet
    from django.core.management import CommandError, call_command
    from django.db import connection

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.ASSISTANCE_CONFIG_KEYS = [old]
    make_channel("support", "slack", {"url": SECRET_URL})
    settings.ASSISTANCE_CONFIG_KEYS = [new, old]
    out = StringIO()
    call_command("assistance_reencrypt", stdout=out)
    assert "re-encrypted" in out.getvalue()
    settings.ASSISTANCE_CONFIG_KEYS = [new]  # the old key is gone: still readable
    assert Channel.objects.get(name="support").config == {"url": SECRET_URL}
    with connection.cursor() as cursor:
        cursor.execute("SELECT config FROM assistance_channel WHERE name = 'support'")
        assert "S3CR3T" not in cursor.fetchone()[0]
    settings.ASSISTANCE_CONFIG_KEYS = [Fernet.generate_key().decode()]  # a lost key
    assert Channel.objects.get(name="support").config == {EncryptedConfigField.UNREADABLE: True}
    with pytest.raises(CommandError, match="support"):
        call_command("assistance_reencrypt", stdout=StringIO())
