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
    """The web process's endpoints and the live process's (config/urls_schema.py)."""
    methods = {path: set(operations) for path, operations in schema["paths"].items()}
    assert methods == {
        "/webhook/": {"post"},
        "/conversations/{conversation_id}/": {"get"},
        "/conversations/": {"get"},
        "/tenants/{tenant_id}/": {"get", "put"},
        "/intake/dead-letters/": {"get"},
        "/intake/dead-letters/{dead_letter_id}/redrive": {"post"},
        "/api/pix/{ispb}/stream/start": {"get"},
        "/api/pix/{ispb}/stream/{interaction_id}": {"get", "delete"},
        "/api/pix/msgs": {"post"},
        "/api/util/msgs/{ispb}/{number}": {"post"},
        "/api/replies/stream/start": {"get"},
        "/api/replies/stream/{interaction_id}": {"get", "delete"},
        "/assistance-requests/": {"post"},
        "/assistance-requests/{request_id}/": {"get"},
        "/assistance-topics/": {"get", "post"},
        "/assistance-topics/{slug}/": {"get", "patch"},
        "/assistance-channels/": {"get", "post"},
        "/assistance-channels/{name}/": {"get", "patch"},
    }


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


def test_the_stream_endpoints_document_their_headers_and_errors(schema: dict[str, Any]) -> None:
    """Section 8: Pull-Next on 200 and 204, Retry-After on 429, Allow on 405, Accept."""
    paths = schema["paths"]
    for path in ("/api/pix/{ispb}/stream/start", "/api/replies/stream/start"):
        get = paths[path]["get"]
        responses = get["responses"]
        assert {"200", "204", "405", "406", "429"} <= set(responses), path
        assert set(responses["200"]["headers"]) == set(responses["204"]["headers"]) == {"Pull-Next"}
        assert set(responses["429"]["headers"]) == {"Retry-After"}
        assert set(responses["405"]["headers"]) == {"Allow"}
        assert "Accept" in {p["name"] for p in get["parameters"] if p["in"] == "header"}
    for path in ("/api/pix/{ispb}/stream/{interaction_id}", "/api/replies/stream/{interaction_id}"):
        assert {"200", "204", "404", "406", "410"} <= set(paths[path]["get"]["responses"])
        assert "429" not in paths[path]["get"]["responses"]  # only start answers 429
        assert {"200", "404"} <= set(paths[path]["delete"]["responses"])
    assert "400" in paths["/api/pix/{ispb}/stream/start"]["get"]["responses"]  # invalid_ispb
    assert {"201", "400", "409"} <= set(paths["/api/pix/msgs"]["post"]["responses"])
    assert {"201", "400"} <= set(paths["/api/util/msgs/{ispb}/{number}"]["post"]["responses"])
    answer = schema["components"]["schemas"]["PixMessageAnswer"]["oneOf"]
    assert answer[1] == {
        "type": "array",
        "items": {"$ref": "#/components/schemas/PixMessage"},
        "minItems": 1,
        "maxItems": 10,
    }
    assert schema["components"]["schemas"]["PixMessage"]["properties"]["valor"]["type"] == "number"
    for path, item in paths.items():
        for operation in item.values():
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")):
                    assert list(response["content"]) == ["application/problem+json"], (
                        path,
                        status,
                    )
