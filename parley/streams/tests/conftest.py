from __future__ import annotations

from parley.streams.tests.live import live

__all__ = ["live"]
