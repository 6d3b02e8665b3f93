"""Content negotiation that never answers 406.

DRF's default negotiation refuses a request whose ``Accept`` header no
renderer satisfies (``Accept: text/html``, even ``application/problem+json``)
with 406, before the view runs: a webhook sender with an unusual ``Accept``
would lose every event. RFC 9110 (section 12.5.1) lets a server ignore
``Accept`` and send its default representation instead, and that is what this
does. A view with several renderers (the OpenAPI schema: YAML or JSON) still
picks among them by ``Accept`` and ``?format=``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request


class LenientContentNegotiation(DefaultContentNegotiation):
    def select_renderer(
        self,
        request: Request,
        renderers: Iterable[BaseRenderer],
        format_suffix: str | None = None,
    ) -> tuple[BaseRenderer, Any]:
        renderers = list(renderers)
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except NotAcceptable:
            return renderers[0], renderers[0].media_type
