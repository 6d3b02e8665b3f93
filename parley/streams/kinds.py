"""Kinds of stream: what the items are, how they are keyed, claimed and shown.

The streaming core (``services``, ``longpoll``, ``views``) knows nothing of
Pix messages or replies. A kind is one small class registered here:

* ``name``, and ``channel``: the bell channel its writers ring, with the key
  as payload;
* ``item_model``: its table of items, with the claim columns of
  :class:`~parley.streams.items.StreamItem`, and ``key_column``, the
  column that holds an item's key (``key_param`` adapts a key to it; the
  key ``""``, where a kind allows it, takes items of every key), plus
  ``item_condition``, any further SQL condition on a claimable item;
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
    key_column: ClassVar[str]
    # A further condition on the item table for an item to be claimable.
    item_condition: ClassVar[str] = "1 = 1"
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

    def key_param(self, key: str) -> Any:
        """A key as a parameter for ``key_column``."""
        return key

    def pending_filter(self, key: str) -> tuple[str, list[Any]]:
        """Which items a stream of ``key`` may claim: a SQL condition on the item table
        and its parameters (with ``delivered_at IS NULL``, which the core adds)."""
        if not key:
            return self.item_condition, []
        return f"{self.key_column} = %s AND {self.item_condition}", [self.key_param(key)]

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
