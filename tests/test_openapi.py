"""The OpenAPI 3 schema (O-4): valid, complete, generated from the code."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
import yaml
from django.core.management import call_command


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    out = StringIO()
    # --validate checks the document against the OpenAPI 3 meta-schema;
    # --fail-on-warn turns any unresolved type into a failure.
    call_command("spectacular", "--validate", "--fail-on-warn", stdout=out)
    loaded: dict[str, Any] = yaml.safe_load(out.getvalue())
    return loaded


def test_schema_is_openapi_3(schema: dict[str, Any]) -> None:
    assert schema["openapi"].startswith("3.")


def test_schema_covers_every_endpoint(schema: dict[str, Any]) -> None:
    assert set(schema["paths"]) == {
        "/webhook/",
        "/conversations/",
        "/conversations/{conversation_id}/",
        "/tenants/{tenant_id}/",
        "/intake/dead-letters/",
        "/intake/dead-letters/{dead_letter_id}/redrive",
    }
    assert set(schema["paths"]["/webhook/"]) == {"post"}
    assert set(schema["paths"]["/conversations/{conversation_id}/"]) == {"get"}
    assert set(schema["paths"]["/conversations/"]) == {"get"}
    assert set(schema["paths"]["/tenants/{tenant_id}/"]) == {"get", "put"}
    assert set(schema["paths"]["/intake/dead-letters/"]) == {"get"}
    assert set(schema["paths"]["/intake/dead-letters/{dead_letter_id}/redrive"]) == {"post"}


def test_each_event_type_has_its_own_payload_schema(schema: dict[str, Any]) -> None:
    components = schema["components"]["schemas"]
    body = schema["paths"]["/webhook/"]["post"]["requestBody"]["content"]["application/json"]
    native, seed = body["schema"]["oneOf"]
    mapping = native["discriminator"]["mapping"]
    assert native["discriminator"]["propertyName"] == "type"
    assert set(mapping) == {
        "NEW_CONVERSATION",
        "NEW_MESSAGE",
        "CLOSE_CONVERSATION",
        "SURVEY_RESPONSE",
    }
    for ref in mapping.values():
        name = ref.rsplit("/", 1)[1]
        assert name in components
        assert set(components[name]["required"]) == {"type", "timestamp", "data"}
    # The seed's envelope, discriminated by event_type.
    assert seed["discriminator"]["propertyName"] == "event_type"
    assert set(seed["discriminator"]["mapping"]) == {"message.received", "message.sent"}
    for ref in seed["discriminator"]["mapping"].values():
        name = ref.rsplit("/", 1)[1]
        assert set(components[name]["required"]) == {"event_type", "correlation_id", "data"}
    assert components["MessageData"]["properties"]["content"]["maxLength"] == 10_000
    examples = {example["summary"]: example["value"] for example in body["examples"].values()}
    assert {"NEW_CONVERSATION", "NEW_MESSAGE", "CLOSE_CONVERSATION"} <= set(examples)
    assert "message.received (seed 001 envelope)" in examples
    assert examples["NEW_MESSAGE"]["timestamp"] == "2025-06-04T14:20:05Z"  # from seed 000


def test_every_documented_error_is_problem_json(schema: dict[str, Any]) -> None:
    webhook = schema["paths"]["/webhook/"]["post"]["responses"]
    assert {"200", "201", "202", "400", "401", "413", "415"} <= set(webhook)
    read = schema["paths"]["/conversations/{conversation_id}/"]["get"]["responses"]
    assert {"200", "401", "404"} <= set(read)
    for responses in (webhook, read):
        for status, response in responses.items():
            if status.startswith(("4", "5")):
                assert list(response["content"]) == ["application/problem+json"], status
