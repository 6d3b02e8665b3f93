"""The channel kinds: a registry of small classes with one interface (A-4).

A kind is one module in this package that defines a :class:`ChannelKind`
subclass and decorates it with :func:`register`. Every module here is
imported when the app starts, so a new kind needs no other edit: routing,
views, tasks and the admin read the registry. A kind declares:

* ``name``: what ``Channel.kind`` stores (``slack``, ``email``, ...);
* ``config_serializer``: the config's schema, checked on every save (API and
  admin); ``{}`` is always accepted and means "the environment's defaults";
* ``secret_keys``: config keys that are credentials (masked, redacted);
* ``rate_per_second`` / ``burst``: the default shared rate limit (A-10);
* :meth:`ChannelKind.default_config`: the config read from settings while a
  channel's own is empty;
* :meth:`ChannelKind.send`: one attempt, returning one :class:`Outcome`:
  delivered, retryable (with ``retry_after`` when the channel said so) or
  permanent, with the status code and a redacted error. It never raises and
  never sleeps: the engine owns retries and waits.
"""

from __future__ import annotations

import enum
import importlib
import pkgutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

from rest_framework import serializers

from parley.assistance.redaction import REDACTED


class Result(enum.Enum):
    DELIVERED = "delivered"
    RETRYABLE = "retryable"
    PERMANENT = "permanent"


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to. ``error`` is already redacted."""

    result: Result
    status_code: int | None = None
    error: str | None = None
    retry_after: float | None = None  # seconds the channel asked to wait

    @classmethod
    def delivered(cls, status_code: int | None = None) -> Outcome:
        return cls(Result.DELIVERED, status_code)

    @classmethod
    def retryable(
        cls, error: str, *, status_code: int | None = None, retry_after: float | None = None
    ) -> Outcome:
        return cls(Result.RETRYABLE, status_code, error, retry_after)

    @classmethod
    def permanent(cls, error: str, *, status_code: int | None = None) -> Outcome:
        return cls(Result.PERMANENT, status_code, error)


@dataclass(frozen=True)
class Notice:
    """What a delivery says, in the forms the kinds need.

    ``key`` is the delivery's id, carried by every attempt (A-6). ``type`` and
    ``data`` make a JSON body (``{"type": ..., "data": ...}``); ``title`` and
    ``text`` are for people (Slack, email, Apprise).
    """

    key: str
    type: str
    data: dict[str, Any]
    title: str
    text: str
    occurred_at: datetime
    # When this attempt starts (a webhook's signed timestamp).
    sent_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    headers: dict[str, str] = field(default_factory=dict)


class ChannelKind:
    name: ClassVar[str]
    label: ClassVar[str]
    config_serializer: ClassVar[type[serializers.Serializer]]
    secret_keys: ClassVar[tuple[str, ...]] = ()
    rate_per_second: ClassVar[float] = 0.0  # 0: no limit
    burst: ClassVar[int] = 1

    def default_config(self) -> dict[str, Any]:
        """The config a channel with an empty one uses (read from settings)."""
        return {}

    def validate(self, config: Any) -> dict[str, Any]:
        """The config, checked against the kind's schema; ``ValidationError`` otherwise."""
        if config in (None, {}):
            return {}
        if not isinstance(config, dict):
            raise serializers.ValidationError("The config must be a JSON object.")
        checked = self.config_serializer(data=config)
        checked.is_valid(raise_exception=True)
        return dict(checked.validated_data)

    def resolve(self, config: dict[str, Any]) -> dict[str, Any]:
        """The config a send uses: the channel's own, else the environment's."""
        return config or self.default_config()

    def secrets(self, config: dict[str, Any]) -> list[str]:
        """Every credential in ``config``, for the redactor."""
        return [str(config[key]) for key in self.secret_keys if config.get(key)]

    def mask(self, config: dict[str, Any]) -> dict[str, Any]:
        """The config as the admin shows it: credentials reduced to a hint."""
        return {
            key: mask_value(str(value)) if key in self.secret_keys else value
            for key, value in config.items()
        }

    def send(self, notice: Notice, config: dict[str, Any]) -> Outcome:
        raise NotImplementedError


def mask_value(value: str) -> str:
    """``https://hooks.slack.com/…WxYz``: the scheme and host of a URL, the last 4 characters."""
    head = ""
    if "://" in value:
        scheme, _, rest = value.partition("://")
        host = rest.split("/", 1)[0].rsplit("@", 1)[-1]
        # An Apprise URL often carries a token where a host would be.
        head = f"{scheme}://{host if '.' in host else REDACTED}/"
    tail = value[-4:] if len(value) >= 12 else ""
    return f"{head}…{tail}"


KINDS: dict[str, ChannelKind] = {}
K = TypeVar("K", bound=type[ChannelKind])


def register(cls: K) -> K:
    """Class decorator: make ``cls`` the kind called ``cls.name``."""
    if cls.name in KINDS and type(KINDS[cls.name]) is not cls:
        raise RuntimeError(f"two channel kinds are called {cls.name!r}")
    KINDS[cls.name] = cls()
    return cls


def get(name: str) -> ChannelKind:
    return KINDS[name]


def choices() -> list[tuple[str, str]]:
    return [(name, kind.label) for name, kind in sorted(KINDS.items())]


def _load_kinds() -> None:
    for module in pkgutil.iter_modules(__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")


_load_kinds()
