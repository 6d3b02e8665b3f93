"""The email kind against a real SMTP server (aiosmtpd), answering 250, 451 or 550 on demand."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from parley.assistance import services
from parley.assistance.services.record import Step
from parley.assistance.tests.conftest import delivery

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("sql_path")]


@dataclass
class Handler:
    """Replies with ``rcpt_reply`` to RCPT and ``data_reply`` to DATA; keeps what it accepted."""

    rcpt_reply: str = "250 OK"
    data_reply: str = "250 Message accepted"
    received: list[Any] = field(default_factory=list)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        if self.rcpt_reply.startswith("250"):
            envelope.rcpt_tos.append(address)
        return self.rcpt_reply

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_reply.startswith("250"):
            self.received.append(envelope)
        return self.data_reply


@pytest.fixture
def smtp(settings: Any) -> Iterator[Handler]:
    handler = Handler()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = port
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.DEFAULT_FROM_EMAIL = "parley@example.com"
    try:
        yield handler
    finally:
        controller.stop()


@pytest.fixture
def pricing(route: Any) -> None:
    route("quote", "email", {"to": ["sales@example.com", "ops@example.com"]})


def submit_quote(submit: Any) -> Any:
    response = submit({"topic": "quote", "description": "A quote for 40 seats, please"})
    assert response.status_code == 202
    return delivery(response)


@pytest.mark.usefixtures("pricing")
def test_a_250_is_sent_with_the_key_in_the_message_id(smtp: Handler, submit: Any) -> None:
    d = submit_quote(submit)
    assert services.delivery_attempt(delivery_id=d.pk).step is Step.SENT
    d.refresh_from_db()
    assert (d.status, d.last_status_code) == ("SENT", 250)
    (envelope,) = smtp.received
    assert envelope.rcpt_tos == ["sales@example.com", "ops@example.com"]
    message = message_from_bytes(envelope.content)
    assert message["Message-ID"] == f"<{d.pk}@example.com>"
    assert message["Subject"] == "Assistance requested: quote"
    assert "A quote for 40 seats, please" in message.get_payload()


@pytest.mark.usefixtures("pricing")
def test_a_451_is_retried(smtp: Handler, submit: Any) -> None:
    smtp.data_reply = "451 4.3.0 Try again later"
    d = submit_quote(submit)
    assert services.delivery_attempt(delivery_id=d.pk).step is Step.RETRY
    d.refresh_from_db()
    assert (d.status, d.last_status_code) == ("QUEUED", 451)
    assert "Try again later" in (d.last_error or "")


@pytest.mark.usefixtures("pricing")
@pytest.mark.parametrize("stage", ["rcpt", "data"])
def test_a_550_fails_at_once(smtp: Handler, submit: Any, stage: str) -> None:
    setattr(smtp, f"{stage}_reply", "550 5.1.1 No such user")
    d = submit_quote(submit)
    assert services.delivery_attempt(delivery_id=d.pk).step is Step.FAILED
    d.refresh_from_db()
    assert (d.status, d.last_status_code) == ("FAILED", 550)
    assert "No such user" in (d.last_error or "")


@pytest.mark.usefixtures("pricing")
def test_a_server_that_is_down_is_retried(smtp: Handler, submit: Any, settings: Any) -> None:
    settings.EMAIL_PORT = 1  # nothing listens there
    d = submit_quote(submit)
    assert services.delivery_attempt(delivery_id=d.pk).step is Step.RETRY


def test_the_default_pricing_channel_writes_a_file_on_the_embedded_defaults(
    submit: Any, settings: Any, tmp_path: Any
) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    settings.EMAIL_FILE_PATH = str(tmp_path / "mail")
    settings.ASSISTANCE_EMAIL_TO = ["assistance@localhost"]
    response = submit({"topic": "pricing", "description": "How much for 40 seats?"})
    d = delivery(response)
    assert services.delivery_attempt(delivery_id=d.pk).step is Step.SENT
    (written,) = list((tmp_path / "mail").iterdir())
    text = written.read_text()
    assert "How much for 40 seats?" in text
    assert str(d.pk) in text
    assert "To: assistance@localhost" in text


def test_email_without_recipients_is_not_configured(submit: Any, settings: Any) -> None:
    settings.ASSISTANCE_EMAIL_TO = []
    d = delivery(submit({"topic": "pricing", "description": "x"}))
    assert services.delivery_attempt(delivery_id=d.pk).step is Step.FAILED
    d.refresh_from_db()
    assert d.last_error == "channel not configured"
