from __future__ import annotations

from django.apps import AppConfig


class StreamsConfig(AppConfig):
    name = "parley.streams"
    label = "streams"
    verbose_name = "Streams for collectors"

    def ready(self) -> None:
        # Each kind of stream registers itself (parley.streams.kinds).
        from parley.streams.pix import kind as pix_kind  # noqa: F401
        from parley.streams.replies import kind as replies_kind  # noqa: F401
