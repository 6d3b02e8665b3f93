"""``Accept`` for stream answers (SPEC X-3): one item, or a batch of up to 10.

Two representations are offered: ``application/json`` (one item, a JSON
object) and ``multipart/json`` (a JSON array of 1 to 10 items); both answer
with ``Content-Type: application/json``. Negotiation follows RFC 9110
(section 12.5.1):

* each offered type takes the quality of the most specific range that
  matches it (``application/json`` over ``application/*`` over ``*/*``);
  parameters other than ``q`` (``charset=utf-8``) do not change the match;
* the highest quality above 0 wins. At equal quality and specificity, a
  batch when the client named ``multipart/json`` itself, else one item: so
  ``*/*`` (curl's, requests' and httpx's default) gets one item, and
  ``multipart/json, application/json`` gets a batch;
* no header, or an empty one, is one item. A malformed range (``text``,
  ``*/json``, ``q=2``) is ignored, as if absent from the list;
* nothing acceptable: :func:`choose` returns None, and the view answers 406
  before it opens or consumes anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SINGLE = "application/json"
BATCH = "multipart/json"
BATCH_LIMIT = 10

# An RFC 9110 "token" (the grammar's word, not a secret).
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"  # noqa: S105
_MEDIA_RANGE = re.compile(rf"\s*({_TOKEN})/({_TOKEN})\s*", re.ASCII)
_PARAMETER = re.compile(rf'\s*({_TOKEN})\s*=\s*({_TOKEN}|"(?:[^"\\]|\\.)*")\s*', re.ASCII)
_QVALUE = re.compile(r"0(\.[0-9]{0,3})?|1(\.0{0,3})?", re.ASCII)
# A comma or semicolon outside a quoted string.
_SEPARATOR = re.compile(r'"(?:[^"\\]|\\.)*"|[,;]|[^,;"]+|"')


@dataclass(frozen=True)
class MediaRange:
    type: str
    subtype: str
    q: float

    def specificity(self, offered: str) -> int | None:
        """2 for ``type/subtype``, 1 for ``type/*``, 0 for ``*/*``; None if it does not match."""
        kind, subtype = offered.split("/")
        if self.type == "*":
            return 0
        if self.type != kind:
            return None
        if self.subtype == "*":
            return 1
        return 2 if self.subtype == subtype else None


def parse(header: str) -> list[MediaRange]:
    """The well-formed media ranges of an ``Accept`` value, lower-cased."""
    ranges: list[MediaRange] = []
    for element in _split(header, ","):
        parts = _split(element, ";")
        match = _MEDIA_RANGE.fullmatch(parts[0])
        if match is None:
            continue
        kind, subtype = match.group(1).lower(), match.group(2).lower()
        if kind == "*" and subtype != "*":
            continue
        q: float | None = 1.0
        for parameter in parts[1:]:
            if not parameter.strip():
                continue  # "application/json;" has an empty parameter list
            found = _PARAMETER.fullmatch(parameter)
            if found is None:
                q = None
                break
            if found.group(1).lower() == "q":
                q = float(found.group(2)) if _QVALUE.fullmatch(found.group(2)) else None
                break  # what follows q is accept-ext: ignored
        if q is not None:
            ranges.append(MediaRange(kind, subtype, q))
    return ranges


def choose(header: str | None) -> str | None:
    """SINGLE, BATCH, or None when the client accepts neither (406)."""
    if header is None or not header.strip():
        return SINGLE
    ranges = parse(header)
    best: tuple[float, int, bool] | None = None
    chosen: str | None = None
    for offered in (SINGLE, BATCH):
        matches = [
            (specificity, r.q)
            for r in ranges
            if (specificity := r.specificity(offered)) is not None
        ]
        if not matches:
            continue
        specificity = max(s for s, _ in matches)
        q = max(q for s, q in matches if s == specificity)
        if q <= 0:
            continue
        # Equal quality and specificity: a named batch, else the single item.
        preferred = offered == BATCH if specificity == 2 else offered == SINGLE
        rank = (q, specificity, preferred)
        if best is None or rank > best:
            best, chosen = rank, offered
    return chosen


def _split(text: str, separator: str) -> list[str]:
    """``text`` split on ``separator`` wherever it is not inside a quoted string."""
    parts, current = [], ""
    for piece in _SEPARATOR.findall(text):
        if piece == separator:
            parts.append(current)
            current = ""
        else:
            current += piece
    parts.append(current)
    return [part for part in parts if part.strip()] if separator == "," else parts
