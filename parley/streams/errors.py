"""The errors of the streaming API (SPEC section 8), as problem+json."""

from __future__ import annotations

import math

from parley.core.errors import ParleyError


class InvalidIspb(ParleyError):
    code = "invalid_ispb"
    title = "Invalid ISPB"


class InvalidNumber(ParleyError):
    code = "invalid_number"
    title = "Invalid number of messages"


class InvalidTenant(ParleyError):
    code = "invalid_tenant"
    title = "Invalid tenant id"


class NotAcceptable(ParleyError):
    status = 406
    code = "not_acceptable"
    title = "Not acceptable"


class StreamNotFound(ParleyError):
    status = 404
    code = "stream_not_found"
    title = "Stream not found"


class StreamClosed(ParleyError):
    status = 410
    code = "stream_closed"
    title = "Stream closed"


class TooManyStreams(ParleyError):
    status = 429
    code = "too_many_streams"
    title = "Too many streams"

    def __init__(self, detail: str, *, retry_after_seconds: float) -> None:
        self.retry_after = max(1, math.ceil(retry_after_seconds))
        super().__init__(detail, headers={"Retry-After": str(self.retry_after)})


class DuplicateEndToEndId(ParleyError):
    status = 409
    code = "duplicate_end_to_end_id"
    title = "Duplicate endToEndId"
