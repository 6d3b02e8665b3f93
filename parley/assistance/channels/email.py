"""``email``: a message through Django's mail (A-4). Config ``{"to": [addresses]}``.

The connection is Django's ``EMAIL_BACKEND`` (SMTP from ``EMAIL_URL``, or the
file backend under ``var/mail/`` on the embedded defaults), opened per send
with ``ASSISTANCE_TIMEOUT_SECONDS``. SMTP 250 is delivered; 4xx replies,
timeouts and dropped connections are retried; 5xx replies are permanent
(A-7). ``Message-ID`` contains the delivery's id, the same on every attempt
(A-6), so a mail store that keeps one copy per id drops a duplicate.
"""

from __future__ import annotations

import smtplib
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.mail import EmailMessage, get_connection
from django.core.validators import validate_email
from rest_framework import serializers

from parley.assistance.channels import ChannelKind, Notice, Outcome, register
from parley.assistance.redaction import describe


class AddressField(serializers.CharField):
    def to_internal_value(self, data: Any) -> str:
        value: str = super().to_internal_value(data)
        try:
            validate_email(value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError("Enter a valid email address.") from exc
        return value


class EmailConfig(serializers.Serializer):
    to = serializers.ListField(
        child=AddressField(max_length=254), min_length=1, max_length=50, help_text="Recipients."
    )


def message_id_domain() -> str:
    sender: str = settings.DEFAULT_FROM_EMAIL
    domain = sender.rsplit("@", 1)[-1].strip(" >") if "@" in sender else ""
    return domain or "parley.invalid"


def smtp_outcome(code: int, error: str) -> Outcome:
    """SMTP reply codes: 4xx try again later, 5xx never (RFC 5321 section 4.2.1)."""
    if 400 <= code < 500:
        return Outcome.retryable(error, status_code=code)
    return Outcome.permanent(error, status_code=code)


@register
class Email(ChannelKind):
    name = "email"
    label = "Email (SMTP through Django's mail)"
    config_serializer = EmailConfig

    def default_config(self) -> dict[str, Any]:
        to: list[str] = settings.ASSISTANCE_EMAIL_TO
        return {"to": list(to)} if to else {}

    def secrets(self, config: dict[str, Any]) -> list[str]:
        password: str = getattr(settings, "EMAIL_HOST_PASSWORD", "") or ""
        return [password] if password else []

    def send(self, notice: Notice, config: dict[str, Any]) -> Outcome:
        secrets = self.secrets(config)
        message = EmailMessage(
            subject=notice.title,
            body=notice.text + f"\n\nRequest: {notice.key}\n",
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=list(config["to"]),
            headers={
                "Message-ID": f"<{notice.key}@{message_id_domain()}>",
                "X-Parley-Request-Id": notice.key,
            },
        )
        try:
            connection = get_connection(
                fail_silently=False, timeout=settings.ASSISTANCE_TIMEOUT_SECONDS
            )
            sent = connection.send_messages([message])
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            return smtp_outcome(code, describe(smtplib.SMTPResponseException(code, text), secrets))
        except smtplib.SMTPResponseException as exc:
            return smtp_outcome(exc.smtp_code, describe(exc, secrets))
        except TimeoutError as exc:
            return Outcome.retryable(f"timed out ({describe(exc, secrets)})")
        except (smtplib.SMTPException, OSError) as exc:  # disconnected, refused, TLS
            return Outcome.retryable(describe(exc, secrets))
        if not sent:
            return Outcome.retryable("the mail backend sent nothing")
        return Outcome.delivered(250)
