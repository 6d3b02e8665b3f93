"""One error type for the application, rendered as RFC 9457 problem+json.

Every error on every endpoint leaves through :func:`problem_exception_handler`
(DRF views) or :func:`problem_response` (the Django-level 404/500 handlers),
so clients can always read ``type``, ``title``, ``status``, ``detail`` and a
stable ``code``.
"""

from __future__ import annotations

from typing import Any

import structlog
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from rest_framework import exceptions as drf
from rest_framework.response import Response
from rest_framework.views import set_rollback

log = structlog.get_logger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"


def problem_type(code: str) -> str:
    """The problem ``type`` URI. A URN: it names the problem, it does not resolve."""
    return f"urn:parley:problem:{code}"


class ParleyError(Exception):
    """A failure the client can act on. Subclasses fix ``status``, ``code`` and ``title``."""

    status: int = 400
    code: str = "bad_request"
    title: str = "Bad request"

    def __init__(
        self,
        detail: str,
        *,
        errors: dict[str, list[str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        # Response headers the error calls for, such as Retry-After.
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return problem_body(
            status=self.status,
            code=self.code,
            title=self.title,
            detail=self.detail,
            errors=self.errors,
        )


class InvalidPayload(ParleyError):
    code = "invalid_payload"
    title = "Invalid payload"


class ConversationExists(ParleyError):
    code = "conversation_exists"
    title = "Conversation already exists"


class ConversationNotFound(ParleyError):
    code = "conversation_not_found"
    title = "Conversation not found"


class ConversationClosed(ParleyError):
    code = "conversation_closed"
    title = "Conversation is closed"


class ConversationAlreadyClosed(ParleyError):
    code = "conversation_already_closed"
    title = "Conversation is already closed"


class BufferExpired(ParleyError):
    code = "buffer_expired"
    title = "Message expired in the out-of-order buffer"


class MessageIdConflict(ParleyError):
    code = "message_id_conflict"
    title = "Message id already used for other content"


class InvalidTimeZone(ParleyError):
    code = "invalid_time_zone"
    title = "Unknown time zone"


class InvalidScore(ParleyError):
    code = "invalid_score"
    title = "Invalid survey score"


class InvalidSignature(ParleyError):
    status = 401
    code = "invalid_signature"
    title = "Missing or invalid webhook signature"


class GroupNotFound(ParleyError):
    status = 404
    code = "group_not_found"
    title = "Message group not found"


class GroupNotFailed(ParleyError):
    """Only a FAILED group can be sent back to the writer (G-8)."""

    status = 409
    code = "group_not_failed"
    title = "Message group is not FAILED"


def problem_body(
    *, status: int, code: str, title: str, detail: str, errors: dict[str, list[str]] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": problem_type(code),
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if errors:
        body["errors"] = errors
    return body


def problem_response(
    *, status: int, code: str, title: str, detail: str, errors: dict[str, list[str]] | None = None
) -> HttpResponse:
    """A problem+json response for code outside DRF (URL resolver, middleware)."""
    return JsonResponse(
        problem_body(status=status, code=code, title=title, detail=detail, errors=errors),
        status=status,
        content_type=PROBLEM_CONTENT_TYPE,
    )


# DRF's own exceptions, mapped to stable codes.
_DRF_CODES: dict[type[drf.APIException], tuple[str, str]] = {
    drf.ParseError: ("invalid_payload", "Invalid payload"),
    drf.ValidationError: ("invalid_payload", "Invalid payload"),
    drf.NotAuthenticated: ("not_authenticated", "Authentication required"),
    drf.AuthenticationFailed: ("not_authenticated", "Authentication failed"),
    drf.PermissionDenied: ("permission_denied", "Permission denied"),
    drf.NotFound: ("not_found", "Not found"),
    drf.MethodNotAllowed: ("method_not_allowed", "Method not allowed"),
    drf.NotAcceptable: ("not_acceptable", "Not acceptable"),
    drf.UnsupportedMediaType: ("unsupported_media_type", "Unsupported media type"),
    drf.Throttled: ("rate_limited", "Too many requests"),
}


def _field_errors(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """Flatten DRF's nested validation detail into ``{"data.id": ["..."]}``."""
    if isinstance(detail, dict):
        out: dict[str, list[str]] = {}
        for key, value in detail.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            out.update(_field_errors(value, name))
        return out
    if isinstance(detail, list) and all(not isinstance(item, dict | list) for item in detail):
        return {prefix or "non_field_errors": [str(item) for item in detail]}
    if isinstance(detail, list):
        out = {}
        for index, item in enumerate(detail):
            out.update(_field_errors(item, f"{prefix}[{index}]"))
        return out
    return {prefix or "non_field_errors": [str(detail)]}


def problem_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """DRF's EXCEPTION_HANDLER: every error becomes problem+json, unknown ones a logged 500."""
    headers: dict[str, str] = {}
    if isinstance(exc, ParleyError):
        status, body = exc.status, exc.body()
        headers.update(exc.headers)
    elif isinstance(exc, RequestDataTooBig):
        status = 413
        body = problem_body(
            status=413,
            code="payload_too_large",
            title="Payload too large",
            detail="The request body is larger than the configured limit.",
        )
    elif isinstance(exc, Http404):
        status = 404
        body = problem_body(status=404, code="not_found", title="Not found", detail="Not found.")
    elif isinstance(exc, PermissionDenied):
        status = 403
        body = problem_body(
            status=403, code="permission_denied", title="Permission denied", detail=str(exc)
        )
    elif isinstance(exc, drf.APIException):
        status = exc.status_code
        code, title = next(
            (v for k, v in _DRF_CODES.items() if isinstance(exc, k)), ("error", "Error")
        )
        errors = None
        if isinstance(exc, drf.ValidationError):
            errors = _field_errors(exc.detail)
            detail = "The payload failed validation."
        else:
            detail = str(exc.detail)
        body = problem_body(status=status, code=code, title=title, detail=detail, errors=errors)
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header  # type: ignore[attr-defined]
        if getattr(exc, "wait", None) is not None:
            headers["Retry-After"] = str(int(exc.wait))  # type: ignore[attr-defined]
    else:
        log.exception("unhandled_error", view=type(context.get("view")).__name__)
        status = 500
        body = problem_body(
            status=500,
            code="internal_error",
            title="Internal server error",
            detail="An unexpected error occurred. It has been logged.",
        )
    set_rollback()
    return Response(body, status=status, headers=headers, content_type=PROBLEM_CONTENT_TYPE)


def handler404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return problem_response(status=404, code="not_found", title="Not found", detail="Not found.")


def handler500(request: HttpRequest) -> HttpResponse:
    return problem_response(
        status=500,
        code="internal_error",
        title="Internal server error",
        detail="An unexpected error occurred. It has been logged.",
    )
