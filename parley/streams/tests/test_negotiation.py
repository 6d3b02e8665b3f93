"""Accept negotiation for stream answers (SPEC X-3)."""

from __future__ import annotations

import pytest

from parley.streams.negotiation import BATCH, SINGLE, choose, parse


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        # X-3's three ways to one message, and the batch.
        (None, SINGLE),
        ("", SINGLE),
        ("   ", SINGLE),
        ("application/json", SINGLE),
        ("*/*", SINGLE),
        ("multipart/json", BATCH),
        # Case, parameters and whitespace do not change the match.
        ("Application/JSON", SINGLE),
        ("application/json; charset=utf-8", SINGLE),
        ("application/json;", SINGLE),
        ('multipart/json; boundary="a,b;c"', BATCH),
        (" multipart/json ; q=1.0 ", BATCH),
        # Wildcards of a type.
        ("application/*", SINGLE),
        ("multipart/*", BATCH),
        # q-values decide; the most specific range gives an offered type its quality.
        ("multipart/json, application/json;q=0.5", BATCH),
        ("application/json, multipart/json;q=0.5", SINGLE),
        ("multipart/json;q=0.2, */*;q=0.9", SINGLE),
        ("multipart/json;q=0, */*", SINGLE),
        ("application/json;q=0, */*", BATCH),
        ("*/*;q=0.1, multipart/json", BATCH),
        ("application/*;q=0.3, multipart/*;q=0.4", BATCH),
        ("text/html, multipart/json;q=0.001", BATCH),
        # Equal quality and specificity: a named batch wins; a wildcard gives one item.
        ("application/json, multipart/json", BATCH),
        ("multipart/json, application/json", BATCH),
        ("application/*, multipart/*", SINGLE),
        # What real clients send.
        ("application/json, text/plain, */*", SINGLE),
        ("multipart/json, application/json, application/problem+json, */*", BATCH),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", SINGLE),
        # A malformed range is ignored, as if absent.
        ("garbage, multipart/json", BATCH),
        ("*/json, application/json", SINGLE),
        ("multipart/json;q=2, application/json", SINGLE),
        ("multipart/json;q=0.0001, application/json", SINGLE),
        ("multipart/json;q, application/json", SINGLE),
        ("multipart/json;q=abc", None),
    ],
)
def test_the_accept_header_picks_one_item_or_a_batch(accept: str | None, expected: str) -> None:
    assert choose(accept) == expected


@pytest.mark.parametrize(
    "accept",
    [
        "text/html",
        "application/xml",
        "application/problem+json",
        "application/json;q=0",
        "application/json;q=0, multipart/json;q=0.000",
        "*/*;q=0",
        "multipart/json;q=0, application/*;q=0",
        "json",
        ",,,",
        "\x00",
    ],
)
def test_nothing_acceptable_is_none_so_the_view_answers_406(accept: str) -> None:
    assert choose(accept) is None


def test_ranges_parse_with_their_quality() -> None:
    ranges = parse('Multipart/JSON;Q=0.5;ext="x,y", */*;q=0.125, bad')

    assert [(r.type, r.subtype, r.q) for r in ranges] == [
        ("multipart", "json", 0.5),
        ("*", "*", 0.125),
    ]
