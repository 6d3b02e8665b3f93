"""Standard Webhooks signatures (S-1).

The helper :func:`sign` below is written from the scheme's text, not with the
``standardwebhooks`` library, so these tests check the library (and our use
of it) against an independent implementation; the published test vector
checks the helper.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from typing import Any

import pytest
import time_machine
from django.test import override_settings

from parley.conversations.models import BufferedMessage, Conversation, Message
from parley.core.errors import InvalidSignature
from parley.webhooks.signatures import verify_signature
from tests.payloads import new_conversation, new_message

PROBLEM = "application/problem+json"

# The test vector published with the Standard Webhooks specification.
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

TOLERANCE = 5 * 60


def sign(secret: str, msg_id: str, timestamp: int | str, body: bytes) -> str:
    """``v1,`` + base64(HMAC-SHA256(key, ``id.timestamp.body``)); the key is the secret's base64."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def signature_headers(
    secret: str, body: bytes, *, timestamp: int | None = None, msg_id: str | None = None
) -> dict[str, str]:
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
    }


def vector_headers(**overrides: str) -> dict[str, str]:
    headers = {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(VECTOR_TIMESTAMP),
        "webhook-signature": VECTOR_SIGNATURE,
    }
    headers.update(overrides)
    return headers


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


# --- The verifier, under a controlled clock ------------------------------------------


def test_the_signing_helper_reproduces_the_published_vector() -> None:
    assert sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY) == VECTOR_SIGNATURE


@override_settings(WEBHOOK_SECRET=VECTOR_SECRET)
def test_the_published_vector_is_accepted() -> None:
    with time_machine.travel(VECTOR_TIMESTAMP + 10, tick=False):
        verify_signature(vector_headers(), VECTOR_BODY)


@override_settings(WEBHOOK_SECRET=VECTOR_SECRET)
@pytest.mark.parametrize("skew", [-TOLERANCE, -TOLERANCE + 1, TOLERANCE - 1, TOLERANCE])
def test_a_timestamp_within_five_minutes_of_the_clock_is_accepted(skew: int) -> None:
    with time_machine.travel(VECTOR_TIMESTAMP - skew, tick=False):
        verify_signature(vector_headers(), VECTOR_BODY)


@override_settings(WEBHOOK_SECRET=VECTOR_SECRET)
@pytest.mark.parametrize(
    ("skew", "reason"),
    [(-(TOLERANCE + 1), "too old"), (TOLERANCE + 1, "too new")],
    ids=["stale", "from-the-future"],
)
def test_a_timestamp_five_minutes_and_one_second_off_is_rejected(skew: int, reason: str) -> None:
    # The clock is set so that the vector's timestamp is `skew` seconds from it.
    with (
        time_machine.travel(VECTOR_TIMESTAMP - skew, tick=False),
        pytest.raises(InvalidSignature, match=reason),
    ):
        verify_signature(vector_headers(), VECTOR_BODY)


@override_settings(WEBHOOK_SECRET=VECTOR_SECRET)
@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_missing_header_is_rejected(missing: str) -> None:
    headers = vector_headers()
    del headers[missing]
    with (
        time_machine.travel(VECTOR_TIMESTAMP + 10, tick=False),
        pytest.raises(InvalidSignature),
    ):
        verify_signature(headers, VECTOR_BODY)


@override_settings(WEBHOOK_SECRET=VECTOR_SECRET)
def test_no_headers_at_all_are_rejected() -> None:
    with (
        time_machine.travel(VECTOR_TIMESTAMP + 10, tick=False),
        pytest.raises(InvalidSignature),
    ):
        verify_signature({}, VECTOR_BODY)


WRONG = "v1," + base64.b64encode(bytes(32)).decode()


@override_settings(WEBHOOK_SECRET=VECTOR_SECRET)
@pytest.mark.parametrize(
    ("headers", "body"),
    [
        (vector_headers(**{"webhook-signature": WRONG}), VECTOR_BODY),
        # The right signature, but for other bytes, another id or another time.
        (vector_headers(), b'{"test": 2432232315}'),
        (vector_headers(**{"webhook-id": "msg_other"}), VECTOR_BODY),
        (vector_headers(**{"webhook-timestamp": str(VECTOR_TIMESTAMP + 1)}), VECTOR_BODY),
        # The right MAC under an unknown version is ignored.
        (vector_headers(**{"webhook-signature": "v2" + VECTOR_SIGNATURE[2:]}), VECTOR_BODY),
    ],
    ids=["wrong-mac", "other-body", "other-id", "other-timestamp", "unknown-version"],
)
def test_a_bad_signature_is_rejected(headers: dict[str, str], body: bytes) -> None:
    with (
        time_machine.travel(VECTOR_TIMESTAMP + 10, tick=False),
        pytest.raises(InvalidSignature),
    ):
        verify_signature(headers, body)


@override_settings(WEBHOOK_SECRET=new_secret())
def test_the_vector_is_rejected_under_another_secret() -> None:
    with (
        time_machine.travel(VECTOR_TIMESTAMP + 10, tick=False),
        pytest.raises(InvalidSignature),
    ):
        verify_signature(vector_headers(), VECTOR_BODY)


@override_settings(WEBHOOK_SECRET=VECTOR_SECRET)
@pytest.mark.parametrize(
    "signature",
    [
        "",
        "v1",  # no comma
        VECTOR_SIGNATURE.replace(",", ""),  # no comma
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE",  # bad base64 padding
        "v1,!!!not base64!!!",
        "v1,a,b",  # two commas
        "v1," + base64.b64encode(b"short").decode(),  # decodes, but to the wrong length
    ],
    ids=["empty", "version-only", "no-comma", "bad-padding", "bad-alphabet", "two-commas", "short"],
)
def test_a_malformed_signature_is_rejected_not_a_crash(signature: str) -> None:
    with (
        time_machine.travel(VECTOR_TIMESTAMP + 10, tick=False),
        pytest.raises(InvalidSignature),
    ):
        verify_signature(vector_headers(**{"webhook-signature": signature}), VECTOR_BODY)


@override_settings(WEBHOOK_SECRET=VECTOR_SECRET)
@pytest.mark.parametrize(
    "signatures",
    [
        f"{WRONG} {VECTOR_SIGNATURE}",
        f"{VECTOR_SIGNATURE} {WRONG}",
        f"v2,{VECTOR_SIGNATURE[3:]} {WRONG} {VECTOR_SIGNATURE}",
    ],
    ids=["wrong-then-right", "right-then-wrong", "other-version-first"],
)
def test_several_signatures_pass_if_one_matches(signatures: str) -> None:
    """Key rotation: the sender signs with the old and the new secret."""
    with time_machine.travel(VECTOR_TIMESTAMP + 10, tick=False):
        verify_signature(vector_headers(**{"webhook-signature": signatures}), VECTOR_BODY)


@override_settings(WEBHOOK_SECRET=VECTOR_SECRET)
def test_several_signatures_fail_if_none_matches() -> None:
    other = sign(new_secret(), VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY)
    with (
        time_machine.travel(VECTOR_TIMESTAMP + 10, tick=False),
        pytest.raises(InvalidSignature),
    ):
        verify_signature(vector_headers(**{"webhook-signature": f"{WRONG} {other}"}), VECTOR_BODY)


@override_settings(WEBHOOK_SECRET="")
def test_without_a_secret_nothing_is_checked() -> None:
    verify_signature({}, VECTOR_BODY)
    verify_signature(vector_headers(**{"webhook-signature": "v1,garbage"}), b"anything")


# --- Through POST /webhook/ ---------------------------------------------------------

SECRET = new_secret()


def body_of(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


def assert_invalid_signature(response: Any) -> None:
    assert response.status_code == 401, response.content
    assert response["Content-Type"] == PROBLEM
    body = response.json()
    assert body["status"] == 401
    assert body["code"] == "invalid_signature"
    assert body["type"] == "urn:parley:problem:invalid_signature"


def assert_nothing_stored() -> None:
    assert Conversation.objects.count() == 0
    assert Message.objects.count() == 0
    assert BufferedMessage.objects.count() == 0


@pytest.mark.django_db
@override_settings(WEBHOOK_SECRET=SECRET)
def test_a_signed_new_conversation_is_created(post_event: Any) -> None:
    conversation_id = uuid.uuid4()
    body = body_of(new_conversation(conversation_id))
    response = post_event(body, **signature_headers(SECRET, body))
    assert response.status_code == 201, response.content
    assert response.json()["id"] == str(conversation_id)
    assert Conversation.objects.filter(pk=conversation_id, status="OPEN").exists()


@pytest.mark.django_db
@override_settings(WEBHOOK_SECRET=SECRET)
def test_a_signature_made_with_the_previous_secret_still_passes_beside_the_new_one(
    post_event: Any,
) -> None:
    body = body_of(new_conversation(uuid.uuid4()))
    headers = signature_headers(SECRET, body)
    old = sign(new_secret(), headers["webhook-id"], headers["webhook-timestamp"], body)
    headers["webhook-signature"] = f"{old} {headers['webhook-signature']}"
    assert post_event(body, **headers).status_code == 201
    assert Conversation.objects.count() == 1


@pytest.mark.django_db
@override_settings(WEBHOOK_SECRET=SECRET)
@pytest.mark.parametrize(
    "payload",
    [new_conversation(uuid.uuid4()), new_message(uuid.uuid4(), uuid.uuid4())],
    ids=["NEW_CONVERSATION", "NEW_MESSAGE"],
)
def test_an_unsigned_event_gets_401_and_nothing_is_stored(
    post_event: Any, payload: dict[str, Any]
) -> None:
    assert_invalid_signature(post_event(body_of(payload)))
    assert_nothing_stored()


@pytest.mark.django_db
@override_settings(WEBHOOK_SECRET=SECRET)
def test_a_stale_signature_gets_401(post_event: Any) -> None:
    body = body_of(new_conversation(uuid.uuid4()))
    stale = int(time.time()) - TOLERANCE - 60
    assert_invalid_signature(post_event(body, **signature_headers(SECRET, body, timestamp=stale)))
    assert_nothing_stored()


@pytest.mark.django_db
@override_settings(WEBHOOK_SECRET=SECRET)
def test_a_body_changed_after_signing_gets_401(post_event: Any) -> None:
    signed = body_of(new_conversation(uuid.uuid4()))
    tampered = body_of(new_conversation(uuid.uuid4()))
    assert_invalid_signature(post_event(tampered, **signature_headers(SECRET, signed)))
    assert_nothing_stored()


@pytest.mark.django_db
@override_settings(WEBHOOK_SECRET=SECRET)
def test_a_malformed_signature_header_gets_401(post_event: Any) -> None:
    body = body_of(new_conversation(uuid.uuid4()))
    headers = signature_headers(SECRET, body)
    headers["webhook-signature"] = "v1"
    assert_invalid_signature(post_event(body, **headers))
    assert_nothing_stored()


@pytest.mark.django_db
@override_settings(WEBHOOK_SECRET="")
def test_without_a_secret_unsigned_events_are_accepted(post_event: Any) -> None:
    conversation_id = uuid.uuid4()
    response = post_event(body_of(new_conversation(conversation_id)))
    assert response.status_code == 201, response.content
    assert Conversation.objects.filter(pk=conversation_id).exists()
