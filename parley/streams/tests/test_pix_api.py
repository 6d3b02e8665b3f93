"""The Pix API through the live process's ASGI application (SPEC section 8, X-1 to X-10)."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest

from parley.streams.models import Interaction, PixMessage, Stream
from parley.streams.tests.live import LiveClient

pytestmark = pytest.mark.django_db(transaction=True)

ISPB = "00000000"
START = f"/api/pix/{ISPB}/stream/start"
PULL_NEXT = re.compile(rf"^/api/pix/{ISPB}/stream/[a-z0-9]{{12}}$")
SEED_MESSAGE: dict[str, Any] = {
    "endToEndId": "E320749862024022119277T3lEBbUM0z",
    "valor": 90.20,
    "pagador": {
        "nome": "Marcos José",
        "cpfCnpj": "98716278190",
        "ispb": "32074986",
        "agencia": "0001",
        "contaTransacional": "1231231",
        "tipoConta": "CACC",
    },
    "recebedor": {
        "nome": "Flavio José",
        "cpfCnpj": "77615678291",
        "ispb": ISPB,
        "agencia": "0361",
        "contaTransacional": "1210098",
        "tipoConta": "SVGS",
    },
    "campoLivre": "",
    "txId": "h7a786d8a7s6gd1hgs",
    "dataHoraPagamento": "2022-07-23T19:47:18.108Z",
}


def generate(live: LiveClient, count: int, ispb: str = ISPB) -> None:
    reply = live.post(f"/api/util/msgs/{ispb}/{count}")
    assert (reply.status, reply.json()) == (201, {"created": count})


def problem(reply: Any, status: int, code: str) -> dict[str, Any]:
    assert reply.status == status, reply.body
    assert reply.headers["content-type"] == "application/problem+json"
    assert "pull-next" not in reply.headers  # errors carry none
    body: dict[str, Any] = reply.json()
    assert (body["status"], body["code"]) == (status, code)
    return body


def pending(ispb: str = ISPB) -> int:
    return PixMessage.objects.filter(recebedor_ispb=ispb, delivered_at__isnull=True).count()


# --- The message (X-1) --------------------------------------------------------------------


def test_a_stored_message_comes_back_with_exactly_the_seed_shape(live: LiveClient) -> None:
    created = live.post("/api/pix/msgs", SEED_MESSAGE)
    assert created.status == 201
    assert created.json() == SEED_MESSAGE

    reply = live.get(START)

    assert reply.status == 200
    assert reply.headers["content-type"] == "application/json"
    assert PULL_NEXT.fullmatch(reply.headers["pull-next"])
    assert list(reply.json()) == list(SEED_MESSAGE)  # exactly these keys, in this order
    assert reply.json() == SEED_MESSAGE
    # valor is a JSON number with two decimals, never a string.
    assert b'"valor":90.20,' in reply.body
    assert b'"dataHoraPagamento":"2022-07-23T19:47:18.108Z"' in reply.body


def test_valor_keeps_two_decimals_and_times_are_utc_with_milliseconds(live: LiveClient) -> None:
    message = {
        **SEED_MESSAGE,
        "valor": 1500,
        "dataHoraPagamento": "2022-07-23T16:47:18.1089-03:00",
    }
    assert live.post("/api/pix/msgs", message).status == 201

    reply = live.get(START)

    assert b'"valor":1500.00,' in reply.body
    assert reply.json()["dataHoraPagamento"] == "2022-07-23T19:47:18.108Z"


def test_generated_messages_have_the_exact_shape_and_valid_ids(live: LiveClient) -> None:
    generate(live, 10)

    reply = live.get(START, accept="multipart/json")

    assert reply.status == 200
    messages = reply.json()
    assert len(messages) == 10
    for message in messages:
        assert list(message) == list(SEED_MESSAGE)
        assert list(message["pagador"]) == list(SEED_MESSAGE["pagador"])
        assert message["recebedor"]["ispb"] == ISPB
        assert re.fullmatch(r"E[0-9]{8}[0-9]{12}[A-Za-z0-9]{11}", message["endToEndId"])
        assert message["endToEndId"][1:9] == message["pagador"]["ispb"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", message["dataHoraPagamento"])
        assert isinstance(message["valor"], float)
    assert len(re.findall(rb'"valor":[0-9]+\.[0-9]{2},', reply.body)) == 10


# --- POST /api/pix/msgs ---------------------------------------------------------------------


BAD_FIELDS: list[tuple[dict[str, Any], str]] = [
    ({"valor": "90.20"}, "valor"),
    ({"valor": 90.201}, "valor"),
    ({"valor": 0}, "valor"),
    ({"valor": -1}, "valor"),
    ({"valor": True}, "valor"),
    ({"valor": 1e20}, "valor"),
    ({"endToEndId": "E32074986202402211927"}, "endToEndId"),
    ({"endToEndId": "E111111112024022119277T3lEBbUM0z"}, "endToEndId"),  # not the payer's ISPB
    ({"endToEndId": "E320749862024139919277T3lEBbUM0z"}, "endToEndId"),  # month 13
    ({"txId": ""}, "txId"),
    ({"txId": "a" * 36}, "txId"),
    ({"dataHoraPagamento": "yesterday"}, "dataHoraPagamento"),
    ({"campoLivre": "x" * 141}, "campoLivre"),
    ({"pagador": "nobody"}, "pagador.non_field_errors"),
    ({"surplus": 1}, "surplus"),
    ({"pagador": {**SEED_MESSAGE["pagador"], "ispb": "3207498"}}, "pagador.ispb"),
    ({"recebedor": {**SEED_MESSAGE["recebedor"], "cpfCnpj": "123"}}, "recebedor.cpfCnpj"),
    ({"recebedor": {**SEED_MESSAGE["recebedor"], "tipoConta": "XXXX"}}, "recebedor.tipoConta"),
    ({"recebedor": {**SEED_MESSAGE["recebedor"], "agencia": "12345"}}, "recebedor.agencia"),
    ({"recebedor": {**SEED_MESSAGE["recebedor"], "nome": ""}}, "recebedor.nome"),
    ({"recebedor": {**SEED_MESSAGE["recebedor"], "extra": "x"}}, "recebedor.extra"),
]


def test_a_bad_message_is_400_with_the_field_errors(live: LiveClient) -> None:
    for change, field in BAD_FIELDS:
        body = problem(
            live.post("/api/pix/msgs", {**SEED_MESSAGE, **change}), 400, "invalid_payload"
        )
        assert field in body["errors"], (change, body)
    assert PixMessage.objects.count() == 0


def test_missing_fields_are_each_named(live: LiveClient) -> None:
    body = problem(live.post("/api/pix/msgs", {"valor": 1}), 400, "invalid_payload")

    assert set(body["errors"]) == {
        "endToEndId",
        "pagador",
        "recebedor",
        "txId",
        "dataHoraPagamento",
    }


def test_a_body_that_is_not_a_json_object_is_refused(live: LiveClient) -> None:
    for body, content_type, status, code in [
        (b"{not json", "application/json", 400, "invalid_payload"),
        (b'{"valor": NaN}', "application/json", 400, "invalid_payload"),
        (b"[]", "application/json", 400, "invalid_payload"),
        (b"\xff\xfe", "application/json", 400, "invalid_payload"),
        (b"", "application/json", 400, "invalid_payload"),
        (json.dumps(SEED_MESSAGE).encode(), "text/plain", 415, "unsupported_media_type"),
        (
            b'{"campoLivre": "' + b"x" * 300_000 + b'"}',
            "application/json",
            413,
            "payload_too_large",
        ),
    ]:
        headers = {"Content-Type": content_type}
        problem(live.request("POST", "/api/pix/msgs", body=body, headers=headers), status, code)
    assert PixMessage.objects.count() == 0


def test_an_end_to_end_id_is_stored_once(live: LiveClient) -> None:
    assert live.post("/api/pix/msgs", SEED_MESSAGE).status == 201

    problem(live.post("/api/pix/msgs", SEED_MESSAGE), 409, "duplicate_end_to_end_id")
    assert PixMessage.objects.count() == 1


# --- POST /api/util/msgs/{ispb}/{number} ---------------------------------------------------


def test_util_stores_the_number_of_messages_asked(live: LiveClient) -> None:
    for number, total in [("1", 1), ("1000", 1001), ("0010", 1011)]:
        generate(live, int(number))
        assert pending() == total
    assert set(PixMessage.objects.values_list("recebedor_ispb", flat=True)) == {ISPB}


def test_util_refuses_a_number_outside_1_to_1000(live: LiveClient) -> None:
    for number in ["0", "1001", "-1", "1.5", "abc", "1e3", "99999999999", "٣"]:
        problem(live.post(f"/api/util/msgs/{ISPB}/{number}"), 400, "invalid_number")
    assert PixMessage.objects.count() == 0


def test_util_checks_the_ispb_before_the_number(live: LiveClient) -> None:
    problem(live.post("/api/util/msgs/123/abc"), 400, "invalid_ispb")


# --- The ISPB (X-2) -------------------------------------------------------------------------


def test_an_ispb_that_is_not_8_ascii_digits_is_400_before_anything_else(
    live: LiveClient,
) -> None:
    for ispb in ["1234567", "123456789", "abcdefgh", "1234567a", "%EF%BC%91" * 8, "١٢٣٤٥٦٧٨"]:
        for method, path in [
            ("GET", f"/api/pix/{ispb}/stream/start"),
            ("GET", f"/api/pix/{ispb}/stream/abcdefabcdef"),
            ("DELETE", f"/api/pix/{ispb}/stream/abcdefabcdef"),
            ("PUT", f"/api/pix/{ispb}/stream/start"),  # even before the method
        ]:
            reply = live.request(method, path, headers={"Accept": "text/html"})
            problem(reply, 400, "invalid_ispb")
    assert Stream.objects.count() == 0


def test_a_stream_only_ever_returns_its_own_ispbs_messages(live: LiveClient) -> None:
    generate(live, 5, ispb="11111111")

    reply = live.get(START, accept="multipart/json")

    assert reply.status == 204
    assert pending("11111111") == 5


# --- Accept (X-3) ---------------------------------------------------------------------------


def test_accept_gives_one_object_or_an_array_of_up_to_ten(live: LiveClient) -> None:
    for accept, many in [
        (None, False),
        ("application/json", False),
        ("*/*", False),
        ("application/json; charset=utf-8", False),
        ("multipart/json", True),
        ("multipart/json, application/json;q=0.5", True),
        ("application/json, multipart/json;q=0.5", False),
    ]:
        PixMessage.objects.all().delete()
        Stream.objects.all().delete()
        generate(live, 12)

        reply = live.get(START, accept=accept)

        assert reply.status == 200
        assert reply.headers["content-type"] == "application/json"
        body = reply.json()
        assert isinstance(body, list if many else dict), accept
        assert (len(body) if many else 1, pending()) == ((10, 2) if many else (1, 11)), accept


def test_a_batch_answers_with_what_is_there_without_waiting_to_fill(live: LiveClient) -> None:
    generate(live, 3)

    reply = live.get(START, accept="multipart/json")

    assert (reply.status, len(reply.json())) == (200, 3)
    assert reply.seconds < 0.5


def test_an_unacceptable_accept_is_406_and_consumes_and_opens_nothing(live: LiveClient) -> None:
    generate(live, 2)
    first = live.get(START)

    for accept in ["text/html", "application/xml", "application/json;q=0"]:
        problem(live.get(START, accept=accept), 406, "not_acceptable")
        problem(live.get(first.headers["pull-next"], accept=accept), 406, "not_acceptable")

    assert Stream.objects.count() == 1
    assert pending() == 1


# --- Waiting (X-4) --------------------------------------------------------------------------


def test_a_get_with_nothing_to_give_answers_204_when_the_poll_time_is_up(
    live: LiveClient,
) -> None:
    reply = live.get(START)

    assert (reply.status, reply.body) == (204, b"")
    assert PULL_NEXT.fullmatch(reply.headers["pull-next"])
    assert "content-type" not in reply.headers
    # PIX_POLL_SECONDS is 0.6 here: never later, and not much earlier.
    assert 0.3 <= reply.seconds <= 0.6
    nxt = live.get(reply.headers["pull-next"])
    assert (nxt.status, nxt.headers["pull-next"]) == (204, reply.headers["pull-next"])
    assert 0.3 <= nxt.seconds <= 0.6


def test_a_waiting_get_answers_as_soon_as_a_message_arrives(
    live: LiveClient, settings: Any
) -> None:
    settings.PIX_POLL_SECONDS = 5.0

    async def scenario() -> tuple[Any, float]:
        waiting = asyncio.ensure_future(live.call("GET", START))
        await asyncio.sleep(0.5)
        stored = await live.call(
            "POST",
            "/api/pix/msgs",
            body=json.dumps(SEED_MESSAGE).encode(),
            headers={"Content-Type": "application/json"},
        )
        assert stored.status == 201
        posted_at = asyncio.get_running_loop().time()
        reply = await waiting
        return reply, asyncio.get_running_loop().time() - posted_at

    reply, after_post = live.run(scenario())

    assert reply.status == 200
    assert reply.json()["endToEndId"] == SEED_MESSAGE["endToEndId"]
    assert after_post < 1.0  # the bell on PostgreSQL, a 0.25 s poll on SQLite


# --- Ids (X-5, X-9) -------------------------------------------------------------------------


def test_each_200_issues_a_new_id_and_older_ids_of_a_live_stream_keep_working(
    live: LiveClient,
) -> None:
    generate(live, 3)
    first = live.get(START)
    second = live.get(first.headers["pull-next"])
    assert first.status == second.status == 200
    assert first.headers["pull-next"] != second.headers["pull-next"]

    third = live.get(first.headers["pull-next"])  # an older id, still this stream
    empty = live.get(first.headers["pull-next"])

    assert third.status == 200
    assert len({first.body, second.body, third.body}) == 3  # never the same message twice
    assert empty.status == 204
    assert empty.headers["pull-next"] == third.headers["pull-next"]  # the latest, never older
    assert Stream.objects.count() == 1


def test_an_id_never_issued_or_of_another_ispb_is_404(live: LiveClient) -> None:
    issued = live.get(START).headers["pull-next"].rsplit("/", 1)[1]

    problem(live.get(f"/api/pix/{ISPB}/stream/abcdefabcdef"), 404, "stream_not_found")
    problem(live.get(f"/api/pix/{ISPB}/stream/notanid"), 404, "stream_not_found")
    body = problem(live.get(f"/api/pix/11111111/stream/{issued}"), 404, "stream_not_found")
    assert ISPB not in body["detail"]  # reveals nothing about the other ISPB
    problem(live.delete(f"/api/pix/11111111/stream/{issued}"), 404, "stream_not_found")


def test_delete_ends_the_stream_with_200_empty_and_again(live: LiveClient) -> None:
    generate(live, 2)
    first = live.get(START)
    path = first.headers["pull-next"]

    deleted = live.delete(path)
    again = live.delete(path)

    assert (deleted.status, deleted.json()) == (200, {})
    assert (again.status, again.json()) == (200, {})
    assert "pull-next" not in deleted.headers
    problem(live.get(path), 410, "stream_closed")
    assert pending() == 1  # the delivered message is acknowledged, never requeued
    stream = Stream.objects.get()
    assert (stream.close_reason, stream.delivered_count, stream.acknowledged_count) == (
        "deleted",
        1,
        1,
    )


# --- Methods (X-10) -------------------------------------------------------------------------


def test_a_wrong_method_is_405_with_allow(live: LiveClient) -> None:
    for method, path, allow in [
        ("POST", START, "GET"),
        ("DELETE", START, "GET"),
        ("HEAD", START, "GET"),  # HEAD would consume messages and drop them
        ("OPTIONS", START, "GET"),
        ("PUT", f"/api/pix/{ISPB}/stream/abcdefabcdef", "GET, DELETE"),
        ("PATCH", f"/api/pix/{ISPB}/stream/abcdefabcdef", "GET, DELETE"),
        ("HEAD", f"/api/pix/{ISPB}/stream/abcdefabcdef", "GET, DELETE"),
        ("GET", "/api/pix/msgs", "POST, OPTIONS"),
        ("GET", f"/api/util/msgs/{ISPB}/1", "POST, OPTIONS"),
    ]:
        reply = live.request(method, path)

        assert (reply.status, reply.headers["allow"]) == (405, allow), (method, path)
        if method != "HEAD":
            problem(reply, 405, "method_not_allowed")
    assert Stream.objects.count() == 0


def test_a_trailing_slash_is_not_the_api(live: LiveClient) -> None:
    problem(live.get(START + "/"), 404, "not_found")


# --- The cap (X-7) ----------------------------------------------------------------------------


def test_only_start_answers_429_and_the_open_streams_go_on(live: LiveClient, settings: Any) -> None:
    settings.PIX_POLL_SECONDS = 0.3
    opened = [live.get(START).headers["pull-next"] for _ in range(6)]

    refused = live.get(START)

    body = problem(refused, 429, "too_many_streams")
    assert int(refused.headers["retry-after"]) >= 1
    assert "6" in body["detail"]
    generate(live, 1)
    assert live.get(opened[0]).status == 200  # the streams themselves never get 429
    assert live.get(opened[5]).status == 204
    assert live.delete(opened[2]).status == 200
    assert live.get(START).status == 204  # a slot is free again
    assert Stream.objects.filter(closed_at__isnull=True).count() == 6
    assert Interaction.objects.count() == 8


# --- The optional bearer token (S-1) ---------------------------------------------------------


def test_with_api_token_set_every_endpoint_needs_it(live: LiveClient, settings: Any) -> None:
    settings.API_TOKEN = "s3cret"
    problem(live.get(START), 401, "not_authenticated")
    problem(live.post(f"/api/util/msgs/{ISPB}/1"), 401, "not_authenticated")
    problem(live.post("/api/pix/msgs", SEED_MESSAGE), 401, "not_authenticated")
    problem(live.get("/api/pix/1/stream/start"), 400, "invalid_ispb")  # the ISPB first

    auth = {"Authorization": "Bearer s3cret"}
    assert live.post(f"/api/util/msgs/{ISPB}/1", headers=auth).status == 201
    assert live.get(START, headers=auth).status == 200
