"""Schema-driven fuzzing of every operation in the OpenAPI document (SPEC S-2).

Schemathesis reads ``/api/schema/`` from the live WSGI application and
generates requests from it: valid ones (``positive``) and ones that break the
schema (``negative``). Each response must not be a 5xx, and its status code,
content type, headers and body must be the ones the schema documents.

The schema also documents the live process's endpoints (the long polls),
which the web process does not route: those operations are sent to the live
process's ASGI application instead, with a poll time short enough that a
GET with nothing to give answers 204 at once.

Reproducible: Hypothesis is derandomized, so a failure comes back on the next
run. Run with ``-s`` to see how many cases ran.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from functools import cache
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.urls import Resolver404, resolve
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from werkzeug.test import Client as WerkzeugClient

from config.wsgi import application
from parley.live.bell import bell
from parley.live.tests.client import live_application
from tests.payloads import new_message

MAX_EXAMPLES = 60
MIN_TOTAL_CASES = 100
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]

# The schema declares no Accept header, so Schemathesis would never vary it;
# clients do, and no Accept value may make the API break its contract.
ACCEPT_HEADERS = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "application/json",
            "application/problem+json",
            "*/*",
            "text/html",
            "application/xml",
            "text/plain; q=0.5, application/json; q=0",
            "application/json; version=2",
        ]
    ),
    # HTTP clients refuse a header value with leading or trailing blanks before sending it.
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60).filter(
        lambda value: value == value.strip()
    ),
)

# Cases run, per target; printed when the test run ends.
CASES_RUN: Counter[str] = Counter()


@cache
def load_schema() -> Any:
    return schemathesis.openapi.from_wsgi("/api/schema/", application)


def operation_labels() -> list[str]:
    """Every operation of the schema, as "METHOD path"."""
    return sorted(result.ok().label for result in load_schema().get_all_operations())


def served_by_live(path: str) -> bool:
    """Whether the live process's URLs route this path template (config/urls_live.py)."""
    try:
        resolve(re.sub(r"\{[^}]+\}", "x", path), urlconf="config.urls_live")
    except Resolver404:
        return False
    return path not in ("/healthz", "/readyz")


def fuzz_targets(*, live: bool) -> list[tuple[str, GenerationMode]]:
    """Every operation with valid data; those with a request body with invalid data too.

    A lone ``string`` path parameter has no invalid values, so Hypothesis could
    not generate a single negative case for such an operation.
    """
    targets = []
    for result in load_schema().get_all_operations():
        operation = result.ok()
        if served_by_live(operation.path) != live:
            continue
        targets.append((operation.label, GenerationMode.POSITIVE))
        if operation.body:
            targets.append((operation.label, GenerationMode.NEGATIVE))
    return sorted(targets, key=lambda target: (target[0], target[1].value))


@pytest.fixture(scope="session")
def fuzz_summary() -> Iterator[Counter[str]]:
    started = time.monotonic()
    yield CASES_RUN
    total = sum(CASES_RUN.values())
    if total:
        elapsed = time.monotonic() - started
        per_target = ", ".join(f"{label}: {count}" for label, count in sorted(CASES_RUN.items()))
        print(f"\nfuzzing: {total} cases ran in {elapsed:.1f} s ({per_target})")


@pytest.fixture
def keep_test_connection() -> Iterator[None]:
    """Let the app share the test's database connection, as Django's test client does.

    The WSGI handler closes "old" connections around every request; inside the
    test's transaction that would close the connection the test runs in.
    """
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def test_the_schema_loads_with_the_api_endpoints() -> None:
    """The fuzz tests are parametrized from the schema: an empty one would test nothing."""
    assert {
        "GET /conversations/{conversation_id}/",
        "GET /conversations/",
        "POST /webhook/",
        "GET /tenants/{tenant_id}/",
        "PUT /tenants/{tenant_id}/",
        "GET /intake/dead-letters/",
        "POST /intake/dead-letters/{dead_letter_id}/redrive",
    } <= set(operation_labels())
    assert {
        "GET /api/pix/{ispb}/stream/start",
        "DELETE /api/pix/{ispb}/stream/{interaction_id}",
        "POST /api/pix/msgs",
        "GET /api/replies/stream/{interaction_id}",
    } <= {label for label, _ in fuzz_targets(live=True)}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("label", "mode"), fuzz_targets(live=False), ids=lambda target: getattr(target, "value", target)
)
@pytest.mark.usefixtures("keep_test_connection")
def test_fuzz_operation(label: str, mode: GenerationMode, fuzz_summary: Counter[str]) -> None:
    fuzz(load_schema(), label, mode, fuzz_summary)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("label", "mode"), fuzz_targets(live=True), ids=lambda target: getattr(target, "value", target)
)
def test_fuzz_live_operation(
    label: str, mode: GenerationMode, fuzz_summary: Counter[str], settings: Any
) -> None:
    """The long polls, on the live process's application (parley/streams/tests/live.py)."""
    schema = schemathesis.openapi.from_dict(copy.deepcopy(load_schema().raw_schema))
    try:
        with live_application(settings) as live:
            settings.PIX_POLL_SECONDS = settings.REPLY_STREAM_POLL_SECONDS = 0.01
            schema.app = live.app
            fuzz(schema, label, mode, fuzz_summary)
    finally:
        # The application ran on Schemathesis's event loop: stop the bell there.
        if bell._loop is not None and bell._loop.is_running():
            asyncio.run_coroutine_threadsafe(bell.stop(), bell._loop).result(10)


def fuzz(schema: Any, label: str, mode: GenerationMode, fuzz_summary: Counter[str]) -> None:
    method, path = label.split(" ", 1)
    operation = schema[path][method]
    checks = [*CHECKS, negative_data_rejection] if mode is GenerationMode.NEGATIVE else CHECKS
    key = f"{label} {mode.value}"

    @hypothesis_settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(case=operation.as_strategy(generation_mode=mode), accept=ACCEPT_HEADERS)
    def run(case: schemathesis.Case, accept: str | None) -> None:
        fuzz_summary[key] += 1
        if accept is not None:
            case.headers["Accept"] = accept
        case.call_and_validate(checks=checks)

    run()
    assert fuzz_summary[key] >= MAX_EXAMPLES // 2


MANAGEMENT_TARGETS = [
    target
    for target in fuzz_targets(live=False)
    if target[0].split(" ", 1)[1].startswith(("/assistance-topics/", "/assistance-channels/"))
]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("label", "mode"), MANAGEMENT_TARGETS, ids=lambda target: getattr(target, "value", target)
)
@pytest.mark.usefixtures("keep_test_connection")
def test_fuzz_management_with_the_token(
    label: str, mode: GenerationMode, fuzz_summary: Counter[str], settings: Any
) -> None:
    """Topics and channels past the token check (without API_TOKEN they are all 403)."""
    settings.API_TOKEN = "fuzz-token"
    method, path = label.split(" ", 1)
    operation = load_schema()[path][method]
    checks = [*CHECKS, negative_data_rejection] if mode is GenerationMode.NEGATIVE else CHECKS
    key = f"{label} {mode.value}+token"

    @hypothesis_settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: schemathesis.Case) -> None:
        fuzz_summary[key] += 1
        case.headers["Authorization"] = "Bearer fuzz-token"
        case.call_and_validate(checks=checks)

    run()
    # A list without parameters has one case; the others have many.
    assert fuzz_summary[key] >= (1 if method == "GET" and "{" not in path else MAX_EXAMPLES // 2)


# --- Below the schema: raw bytes and extreme timestamps ------------------------------
# Schemathesis always sends well-formed UTF-8 JSON. These send what it cannot,
# and hold the answers to the same contract.

VALID_MESSAGE = json.dumps(
    new_message("49108c71-4dca-4af3-9f32-61bc745926e2", "6a41b347-8d80-4ce9-84ba-7af66f369f6a")
).encode()
# Any byte anywhere: most break the JSON, some land inside a string.
MUTATED_MESSAGES = st.tuples(
    st.integers(0, len(VALID_MESSAGE) - 1), st.binary(min_size=1, max_size=3)
).map(lambda cut: VALID_MESSAGE[: cut[0]] + cut[1] + VALID_MESSAGE[cut[0] + 1 :])
# Bytes inside the text: valid JSON around them, not always UTF-8 within.
MARKER = "@@CONTENT@@"
CONTENT_TEMPLATE = json.dumps(
    new_message(
        "49108c71-4dca-4af3-9f32-61bc745926e2", "6a41b347-8d80-4ce9-84ba-7af66f369f6a", MARKER
    )
).encode()
RAW_CONTENTS = st.binary(min_size=1, max_size=8).map(
    lambda raw: CONTENT_TEMPLATE.replace(
        MARKER.encode(), raw.replace(b'"', b"").replace(b"\\", b"") or b"x"
    )
)
RAW_BODIES = st.one_of(st.binary(max_size=200), MUTATED_MESSAGES, RAW_CONTENTS)


def with_offset(moment: datetime, minutes: int) -> str:
    hours, rest = divmod(abs(minutes), 60)
    return f"{moment.isoformat()}{'-' if minutes < 0 else '+'}{hours:02d}:{rest:02d}"


# Any instant of years 1 to 9999 at any offset, half of them within a day of
# either end, where an offset can push the UTC time out of range.
TIMESTAMPS = st.builds(
    with_offset,
    st.one_of(
        st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)),
        st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(1, 1, 2)),
        st.datetimes(
            min_value=datetime(9999, 12, 31), max_value=datetime(9999, 12, 31, 23, 59, 59)
        ),
    ),
    st.integers(-(24 * 60 - 1), 24 * 60 - 1),
)


def post_raw(body: bytes) -> Any:
    client = WerkzeugClient(application)
    return client.post("/webhook/", data=body, content_type="application/json")


def assert_documented(response: Any) -> None:
    operation = load_schema()["/webhook/"]["POST"]
    documented = load_schema().raw_schema["paths"]["/webhook/"]["post"]["responses"]
    assert response.status_code < 500, response.get_data(as_text=True)
    assert str(response.status_code) in documented, response.get_data(as_text=True)
    expected = "application/problem+json" if response.status_code >= 400 else "application/json"
    assert response.mimetype == expected
    operation.validate_response(response)


@pytest.mark.django_db
@pytest.mark.usefixtures("keep_test_connection")
def test_fuzz_webhook_with_raw_bytes(fuzz_summary: Counter[str]) -> None:
    """Bytes that are not JSON, not UTF-8, or a valid event with a byte replaced."""

    @hypothesis_settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None)
    @given(body=RAW_BODIES)
    def run(body: bytes) -> None:
        fuzz_summary["POST /webhook/ raw-bytes"] += 1
        assert_documented(post_raw(body))

    run()


@pytest.mark.django_db
@pytest.mark.usefixtures("keep_test_connection")
def test_fuzz_webhook_timestamps(fuzz_summary: Counter[str]) -> None:
    """An event time of any year, at any offset: stored (202) or refused (400)."""

    @hypothesis_settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None)
    @given(timestamp=TIMESTAMPS)
    def run(timestamp: str) -> None:
        fuzz_summary["POST /webhook/ timestamps"] += 1
        payload = new_message(uuid.uuid4(), uuid.uuid4(), timestamp=timestamp)
        response = post_raw(json.dumps(payload).encode())
        assert_documented(response)
        assert response.status_code in (202, 400)
        if response.status_code == 400:
            assert list(response.get_json()["errors"]) == ["timestamp"]

    run()
    # The ends of the range, where an offset pushes the UTC time out of it, and
    # offsets past PostgreSQL's limit of 15:59.
    for timestamp, status in [
        ("2025-06-04T14:20:00+16:00", 202),
        ("2025-06-04T14:20:00-23:59", 202),
        ("0001-01-01T00:00:00+00:01", 400),
        ("9999-12-31T23:59:59-00:01", 400),
        ("0001-01-01T00:00:00-00:01", 202),
        ("9999-12-31T23:59:59+00:01", 202),
    ]:
        payload = new_message(uuid.uuid4(), uuid.uuid4(), timestamp=timestamp)
        assert post_raw(json.dumps(payload).encode()).status_code == status, timestamp


def test_enough_cases_ran(fuzz_summary: Counter[str]) -> None:
    """Runs after the fuzz tests above (pytest keeps file order)."""
    ran = {key.rsplit(" ", 1)[0] for key in fuzz_summary}
    if ran != set(operation_labels()):
        pytest.skip("only part of the fuzz tests was selected")
    assert sum(fuzz_summary.values()) > MIN_TOTAL_CASES
