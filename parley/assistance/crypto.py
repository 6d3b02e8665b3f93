"""Channel configs encrypted at rest (A-9).

A channel's config holds credentials: a Slack webhook URL *is* the secret,
and so are a webhook's signing secret and most Apprise URLs. They are stored
as Fernet tokens (AES-128-CBC with HMAC-SHA256, from ``cryptography``), so a
database dump, a replica or a backup does not give them away.

Keys: ``ASSISTANCE_CONFIG_KEYS``, comma-separated Fernet keys; the first
encrypts, every one decrypts, so a key is rotated by putting a new one first
and re-saving the channels (``manage.py assistance_reencrypt``). Without it
the key is derived from ``SECRET_KEY`` (HKDF-SHA256), so the embedded
defaults need no setup; production should set its own, because rotating
``SECRET_KEY`` would otherwise make the stored configs unreadable.
"""

from __future__ import annotations

import base64
import json
from functools import cache
from typing import TYPE_CHECKING, Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.db import models

PREFIX = "fernet:"


class ConfigUnreadable(Exception):
    """The stored config was encrypted with a key that is no longer configured."""


def derived_key(secret: str) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"parley.assistance.config")
    return base64.urlsafe_b64encode(hkdf.derive(secret.encode()))


@cache
def _fernet(keys: tuple[str, ...], secret_key: str) -> MultiFernet:
    materials = [key.encode() for key in keys] or [derived_key(secret_key)]
    return MultiFernet([Fernet(material) for material in materials])


def fernet() -> MultiFernet:
    return _fernet(tuple(settings.ASSISTANCE_CONFIG_KEYS), settings.SECRET_KEY)


def encrypt(config: dict[str, Any]) -> str:
    if not config:
        return ""  # "no config of its own": nothing to hide
    plain = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    return PREFIX + fernet().encrypt(plain).decode()


def decrypt(stored: str | None) -> dict[str, Any]:
    if not stored:
        return {}
    if not stored.startswith(PREFIX):
        raise ConfigUnreadable("the stored config is not an encrypted token")
    try:
        plain = fernet().decrypt(stored[len(PREFIX) :].encode())
    except InvalidToken as exc:
        raise ConfigUnreadable("no configured key decrypts the stored config") from exc
    loaded: dict[str, Any] = json.loads(plain)
    return loaded


if TYPE_CHECKING:  # the attribute is a dict, not the column's text
    _TextField = models.TextField[dict[str, Any], dict[str, Any]]
else:
    _TextField = models.TextField


class EncryptedConfigField(_TextField):
    """A JSON object stored encrypted. The Python value is the object itself.

    An unreadable value (a lost key) loads as the marker ``{"__unreadable__":
    true}`` instead of failing the whole query: the admin and the API still
    list the channel, and a delivery through it fails with a clear error.
    """

    UNREADABLE = "__unreadable__"

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> dict[str, Any]:
        try:
            return decrypt(value)
        except ConfigUnreadable:
            return {self.UNREADABLE: True}

    def to_python(self, value: Any) -> dict[str, Any]:
        if isinstance(value, dict):
            return value
        if value in (None, ""):
            return {}
        if isinstance(value, str) and value.startswith(PREFIX):
            return decrypt(value)
        loaded: dict[str, Any] = json.loads(value)
        return loaded

    def get_prep_value(self, value: Any) -> str:
        if isinstance(value, str):
            return value  # already a token (a query's parameter)
        return encrypt(dict(value or {}))

    def value_to_string(self, obj: Any) -> str:
        # dumpdata writes the token, never the config in clear.
        return self.get_prep_value(self.value_from_object(obj))
