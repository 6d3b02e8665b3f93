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
        "/conversations/{conversation_id}/",
        "/assistance-requests/",
        "/assistance-requests/{request_id}/",
        "/assistance-topics/",
        "/assistance-topics/{slug}/",
        "/assistance-channels/",
        "/assistance-channels/{name}/",
    }
    assert set(schema["paths"]["/webhook/"]) == {"post"}
    assert set(schema["paths"]["/conversations/{conversation_id}/"]) == {"get"}


def test_each_event_type_has_its_own_payload_schema(schema: dict[str, Any]) -> None:
    components = schema["components"]["schemas"]
    body = schema["paths"]["/webhook/"]["post"]["requestBody"]["content"]["application/json"]
    mapping = body["schema"]["discriminator"]["mapping"]
    assert set(mapping) == {"NEW_CONVERSATION", "NEW_MESSAGE", "CLOSE_CONVERSATION"}
    for ref in mapping.values():
        name = ref.rsplit("/", 1)[1]
        assert name in components
        assert set(components[name]["required"]) == {"type", "timestamp", "data"}
    assert components["MessageData"]["properties"]["content"]["maxLength"] == 10_000
    examples = {example["summary"]: example["value"] for example in body["examples"].values()}
    assert set(examples) == {"NEW_CONVERSATION", "NEW_MESSAGE", "CLOSE_CONVERSATION"}
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
