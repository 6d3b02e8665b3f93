"""Kinds of stream: what the items are, how they are keyed, claimed and shown.

The streaming core (``services``, ``longpoll``, ``views``) knows nothing of
Pix messages or replies. A kind is one small class registered here:

* ``name``, and ``channel``: the bell channel its writers ring, with the key
  as payload;
* ``item_model``: its table of items, with the claim columns of
  :class:`~parley.streams.items.StreamItem`;
* ``pending_filter(key)``: which pending items a stream of that key may
  claim, as a SQL condition on that table;
* ``render(ids)``: the items of a claim, in claim order, as JSON-ready
  objects, and ``encode`` for the body;
* ``pull_next(key, interaction_id)``: the path of the next request;
* its three limits, from settings: poll seconds, streams per key, idle seconds.

A new kind of stream is one module that subclasses :class:`StreamKind`,
calls :func:`register`, and adds its views to ``config/urls_live.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar
from uuid import UUID

import msgspec
from django.conf import settings

from parley.streams.items import StreamItem

_JSON = msgspec.json.Encoder(decimal_format="number")


class StreamKind:
    name: ClassVar[str]
    channel: ClassVar[str]
    item_model: ClassVar[type[StreamItem]]
    # Names of the settings that hold this kind's limits.
    poll_seconds_setting: ClassVar[str]
    max_streams_setting: ClassVar[str]
    idle_seconds_setting: ClassVar[str]
    # How the key is named in messages ("ISPB", "tenant").
    key_label: ClassVar[str] = "key"

    @property
    def poll_seconds(self) -> float:
        return float(getattr(settings, self.poll_seconds_setting))

    @property
    def max_streams(self) -> int:
        return int(getattr(settings, self.max_streams_setting))

    @property
    def idle_seconds(self) -> float:
        return float(getattr(settings, self.idle_seconds_setting))

    def pending_filter(self, key: str) -> tuple[str, list[Any]]:
        """A SQL condition on the item table (unqualified columns) and its parameters."""
        raise NotImplementedError

    def bell_key(self, key: str) -> str | None:
        """The bell key a waiter of this stream key listens for; None for every key."""
        return key or None

    def tenant_id(self, key: str) -> UUID | None:
        """The tenant of this stream key's outbox events."""
        return None

    def render(self, ids: Sequence[int]) -> list[Any]:
        """The items with these ids, in this order, as JSON-ready objects."""
        raise NotImplementedError

    def encode(self, payload: Any) -> bytes:
        return _JSON.encode(payload)

    def pull_next(self, key: str, interaction_id: str) -> str:
        raise NotImplementedError


_KINDS: dict[str, StreamKind] = {}


def register(kind: StreamKind) -> StreamKind:
    if kind.name in _KINDS:
        raise ValueError(f"a stream kind named {kind.name!r} is already registered")
    _KINDS[kind.name] = kind
    return kind


def get(name: str) -> StreamKind:
    return _KINDS[name]


def all_kinds() -> list[StreamKind]:
    return list(_KINDS.values())
