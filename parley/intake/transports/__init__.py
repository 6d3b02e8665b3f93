"""Brokers the consumer reads from: a registry of small classes, one module each.

A transport knows how a broker keeps the events of one conversation in order
(Q-4, Q-5) and how it reports redeliveries and lag. Adding a broker is one
module that subclasses :class:`Transport` and is named in ``MODULES``; the
consumer, ``publish_events`` and the tests go through :func:`for_url`.
"""

from __future__ import annotations

import importlib
from typing import Any
from urllib.parse import urlsplit

from parley.intake.transports.base import Transport

MODULES = (
    "parley.intake.transports.amqp",
    "parley.intake.transports.sqs",
    "parley.intake.transports.redis",
    "parley.intake.transports.filesystem",
)
REGISTRY: dict[str, type[Transport]] = {}


def register(cls: type[Transport]) -> type[Transport]:
    for scheme in cls.schemes:
        REGISTRY[scheme] = cls
    return cls


def for_url(url: str, **options: Any) -> Transport:
    """The transport of a kombu URL (``amqp://``, ``sqs://``, ``redis://``, ``filesystem://``)."""
    for module in MODULES:
        importlib.import_module(module)
    scheme = urlsplit(url).scheme.split("+", 1)[0] or url.split(":", 1)[0]
    try:
        cls = REGISTRY[scheme]
    except KeyError:
        raise ValueError(
            f"INTAKE_BROKER_URL scheme {scheme!r} is not supported; "
            f"use one of {', '.join(sorted(REGISTRY))}."
        ) from None
    return cls(url, **options)


__all__ = ["REGISTRY", "Transport", "for_url", "register"]
