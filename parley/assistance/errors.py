"""The assistance API's errors, as problem+json (parley.core.errors)."""

from __future__ import annotations

from parley.core.errors import ParleyError


class UnknownTopic(ParleyError):
    code = "unknown_topic"
    title = "Unknown or inactive topic"


class IdempotencyKeyReused(ParleyError):
    status = 422
    code = "idempotency_key_reused"
    title = "Idempotency-Key already used for another request"


class InvalidIdempotencyKey(ParleyError):
    code = "invalid_idempotency_key"
    title = "Invalid Idempotency-Key header"


class DeliveryNotFailed(ParleyError):
    status = 409
    code = "not_failed"
    title = "Only a FAILED request can be retried"
