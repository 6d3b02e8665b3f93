"""Adds the msgspec-generated event schemas to the OpenAPI document."""

from __future__ import annotations

from typing import Any

from parley.webhooks.schemas import openapi_components


def add_event_components(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """drf-spectacular postprocessing hook."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in openapi_components().items():
        schemas.setdefault(name, schema)
    # A hand-written request schema is optional to drf-spectacular; the event is not.
    for item in result.get("paths", {}).values():
        for operation in item.values():
            if operation.get("operationId") == "webhook_receive" and "requestBody" in operation:
                operation["requestBody"]["required"] = True
    return result
