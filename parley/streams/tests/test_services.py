"""The streaming core's services, on the real database, with an explicit clock (``now=``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection

from parley.outbox.models import OutboxEvent
from parley.streams import services
from parley.streams.errors import StreamClosed, StreamNotFound, TooManyStreams
from parley.streams.models import Interaction, PixMessage, Stream
from parley.streams.pix.kind import PIX
from parley.streams.pix.services import messages_generate

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ISPB = "32074986"
OTHER = "11111111"


def seconds(n: float) -> timedelta:
    return timedelta(seconds=n)


def start(at: datetime = T0, limit: int = 10, key: str = ISPB) -> services.Begun:
    return services.stream_start(kind=PIX, key=key, limit=limit, now=at)


def resume(interaction_id: str, at: datetime, limit: int = 10, key: str = ISPB) -> services.Begun:
    return services.stream_resume(
        kind=PIX, key=key, interaction_id=interaction_id, limit=limit, now=at
    )


def finish(stream_id: int, at: datetime) -> str:
    return services.stream_finish(kind=PIX, stream_id=stream_id, now=at)


def events(kind: str) -> list[dict[str, Any]]:
    return [e.data for e in OutboxEvent.objects.filter(type=kind).order_by("id")]


def pending(ispb: str = ISPB) -> int:
    return PixMessage.objects.filter(recebedor_ispb=ispb, delivered_at__isnull=True).count()


# --- Opening ---------------------------------------------------------------------------


def test_a_start_opens_a_stream_in_the_lowest_free_slot_and_records_it() -> None:
    first = start()
    second = start()

    streams = list(Stream.objects.order_by("id").values_list("id", "kind", "key", "slot"))
    assert streams == [(first.stream_id, "pix", ISPB, 1), (second.stream_id, "pix", ISPB, 2)]
    assert events("stream.opened") == [
        {"stream_id": first.stream_id, "kind": "pix", "key": ISPB, "slot": 1},
        {"stream_id": second.stream_id, "kind": "pix", "key": ISPB, "slot": 2},
    ]
    assert (first.batch, second.batch) == (None, None)  # nothing to claim yet


def test_a_start_past_the_cap_is_429_with_retry_after_and_opens_nothing(settings: Any) -> None:
    settings.PIX_MAX_STREAMS_PER_ISPB = 2
    messages_generate(ispb=ISPB, count=3)
    start(at=T0, limit=1)
    start(at=T0 + seconds(5), limit=1)

    with pytest.raises(TooManyStreams) as refused:
        start(at=T0 + seconds(6), limit=1)

    # Each answered with a message at once: the first can expire 60 s idle after that.
    assert refused.value.headers == {"Retry-After": str(60 - 6)}
    assert refused.value.status == 429
    assert Stream.objects.count() == 2
    assert pending() == 1  # two starts took one message each; the refused one took none
    # Another ISPB is never affected.
    assert start(at=T0 + seconds(6), key=OTHER).stream_id


def test_a_slot_frees_on_delete_and_is_taken_again(settings: Any) -> None:
    settings.PIX_MAX_STREAMS_PER_ISPB = 2
    first = start()
    second = start()
    services.stream_delete(kind=PIX, key=ISPB, interaction_id=finish(first.stream_id, T0), now=T0)

    third = start()

    assert Stream.objects.get(id=third.stream_id).slot == 1
    assert Stream.objects.get(id=second.stream_id).slot == 2


# --- Claiming ----------------------------------------------------------------------------


def test_a_start_takes_what_is_pending_oldest_first_up_to_the_limit() -> None:
    messages_generate(ispb=ISPB, count=12)
    messages_generate(ispb=OTHER, count=3)
    oldest = list(PixMessage.objects.filter(recebedor_ispb=ISPB).order_by("id"))

    begun = start(limit=10)

    assert begun.batch is not None
    assert begun.batch.item_ids == [m.id for m in oldest[:10]]
    claimed = PixMessage.objects.filter(id__in=begun.batch.item_ids)
    assert {(m.interaction_id, m.delivered_at) for m in claimed} == {
        (begun.batch.interaction_id, T0)
    }
    assert pending() == 2
    assert pending(OTHER) == 3  # only its own ISPB's messages
    stream = Stream.objects.get(id=begun.stream_id)
    assert (stream.delivered_count, stream.acknowledged_count, stream.last_seq) == (10, 0, 1)
    assert events("stream.delivered") == [
        {
            "stream_id": begun.stream_id,
            "kind": "pix",
            "key": ISPB,
            "interaction_id": begun.batch.interaction_id,
            "count": 10,
        }
    ]


def test_a_claimed_message_is_never_claimed_again_by_any_stream() -> None:
    messages_generate(ispb=ISPB, count=3)
    a, b = start(limit=1), start(limit=10)
    assert a.batch is not None
    assert b.batch is not None

    again = services.stream_claim(kind=PIX, stream_id=a.stream_id, key=ISPB, limit=10, now=T0)
    assert again is None
    assert sorted(a.batch.item_ids + b.batch.item_ids) == sorted(
        PixMessage.objects.values_list("id", flat=True)
    )


def test_a_claim_with_nothing_pending_writes_nothing() -> None:
    begun = start()
    before = (OutboxEvent.objects.count(), Interaction.objects.count())

    assert services.stream_claim(kind=PIX, stream_id=begun.stream_id, key=ISPB, limit=1) is None
    assert (OutboxEvent.objects.count(), Interaction.objects.count()) == before


def test_a_claim_on_a_closed_stream_is_410_and_takes_nothing() -> None:
    begun = start()
    services.stream_delete(kind=PIX, key=ISPB, interaction_id=finish(begun.stream_id, T0))
    messages_generate(ispb=ISPB, count=1)

    with pytest.raises(StreamClosed):
        services.stream_claim(kind=PIX, stream_id=begun.stream_id, key=ISPB, limit=1)
    assert pending() == 1


# --- Ids, acknowledgements, 404 and 410 -----------------------------------------------


def test_each_answer_with_items_issues_a_new_id_and_a_204_repeats_the_latest() -> None:
    messages_generate(ispb=ISPB, count=2)
    begun = start(limit=1)
    assert begun.batch is not None
    first = begun.batch.interaction_id
    nxt = resume(first, T0 + seconds(1), limit=1)
    assert nxt.batch is not None
    second = nxt.batch.interaction_id

    empty = resume(second, T0 + seconds(2))

    assert empty.batch is None
    assert finish(begun.stream_id, T0 + seconds(10)) == second
    # An older id still works, and its 204 gives the latest id, never the older one.
    assert resume(first, T0 + seconds(11)).batch is None
    assert finish(begun.stream_id, T0 + seconds(19)) == second
    ids = list(Interaction.objects.order_by("seq").values_list("id", "seq", "item_count"))
    assert ids == [(first, 1, 1), (second, 2, 1)]
    assert all(services.ID_PATTERN.fullmatch(i) for i, _, _ in ids)


def test_a_start_that_finds_nothing_gets_a_first_id_for_its_204() -> None:
    begun = start()

    interaction_id = finish(begun.stream_id, T0 + seconds(8))

    assert Interaction.objects.get(id=interaction_id).item_count == 0
    assert finish(begun.stream_id, T0 + seconds(16)) == interaction_id


def test_asking_with_an_id_acknowledges_what_came_with_it_and_before() -> None:
    messages_generate(ispb=ISPB, count=3)
    begun = start(limit=1)
    assert begun.batch is not None
    second = resume(begun.batch.interaction_id, T0 + seconds(1), limit=1).batch
    assert second is not None
    third = resume(second.interaction_id, T0 + seconds(2), limit=1).batch
    assert third is not None

    stream = Stream.objects.get(id=begun.stream_id)
    assert (stream.delivered_count, stream.acknowledged_count) == (3, 2)
    acked = dict(Interaction.objects.values_list("id", "acked_at"))
    assert acked == {
        begun.batch.interaction_id: T0 + seconds(1),
        second.interaction_id: T0 + seconds(2),
        third.interaction_id: None,
    }


@pytest.mark.parametrize("interaction_id", ["", "short", "ABCDEFGHIJKL", "abc-defghijk", "x" * 13])
def test_a_malformed_id_is_not_found(interaction_id: str) -> None:
    start()
    with pytest.raises(StreamNotFound):
        resume(interaction_id, T0)


def test_an_id_never_issued_or_of_another_ispb_is_not_found() -> None:
    begun = start()
    issued = finish(begun.stream_id, T0)

    with pytest.raises(StreamNotFound):
        resume("abcdefabcdef", T0)
    with pytest.raises(StreamNotFound):
        resume(issued, T0, key=OTHER)
    with pytest.raises(StreamNotFound):
        services.stream_delete(kind=PIX, key=OTHER, interaction_id=issued)
    assert Stream.objects.get(id=begun.stream_id).closed_at is None


def test_delete_acknowledges_everything_never_requeues_and_repeats_as_200() -> None:
    messages_generate(ispb=ISPB, count=4)
    begun = start(limit=2)
    assert begun.batch is not None
    latest = resume(begun.batch.interaction_id, T0 + seconds(1), limit=2).batch
    assert latest is not None

    services.stream_delete(
        kind=PIX, key=ISPB, interaction_id=begun.batch.interaction_id, now=T0 + seconds(2)
    )
    services.stream_delete(kind=PIX, key=ISPB, interaction_id=latest.interaction_id)

    stream = Stream.objects.get(id=begun.stream_id)
    assert (stream.close_reason, stream.closed_at) == ("deleted", T0 + seconds(2))
    assert (stream.delivered_count, stream.acknowledged_count) == (4, 4)
    assert pending() == 0  # nothing requeued
    assert len(events("stream.closed")) == 1
    assert events("stream.closed")[0] == {
        "stream_id": begun.stream_id,
        "kind": "pix",
        "key": ISPB,
        "reason": "deleted",
        "delivered": 4,
        "acknowledged": 4,
    }
    with pytest.raises(StreamClosed):
        resume(latest.interaction_id, T0 + seconds(3))


# --- Expiry (X-8) ---------------------------------------------------------------------------


def test_a_stream_expires_after_the_idle_time_since_its_last_request_ended() -> None:
    begun = start(at=T0)
    interaction_id = finish(begun.stream_id, T0 + seconds(8))  # the request ends at 8 s

    resume(interaction_id, T0 + seconds(8 + 59))  # 59 s idle: still open
    finish(begun.stream_id, T0 + seconds(75))
    assert services.streams_expire(now=T0 + seconds(75 + 59.9)) == 0

    assert services.streams_expire(now=T0 + seconds(75 + 60)) == 1
    stream = Stream.objects.get(id=begun.stream_id)
    assert (stream.close_reason, stream.closed_at) == ("expired", T0 + seconds(135))
    assert events("stream.closed")[-1]["reason"] == "expired"
    with pytest.raises(StreamClosed):
        resume(interaction_id, T0 + seconds(136))


def test_a_stream_never_expires_while_a_request_of_it_is_in_flight(settings: Any) -> None:
    settings.PIX_STREAM_IDLE_SECONDS = 1.0  # shorter than a long poll
    begun = start(at=T0)

    # The start request is still waiting: its poll time and grace protect it.
    in_flight = PIX.poll_seconds + services.REQUEST_GRACE.total_seconds()
    assert services.streams_expire(now=T0 + seconds(in_flight - 0.1)) == 0
    interaction_id = finish(begun.stream_id, T0 + seconds(PIX.poll_seconds))
    assert services.streams_expire(now=T0 + seconds(PIX.poll_seconds + 0.9)) == 0
    # A second request arrives, and so on: each moves the horizon.
    resume(interaction_id, T0 + seconds(PIX.poll_seconds + 0.9))
    assert services.streams_expire(now=T0 + seconds(2 * PIX.poll_seconds)) == 0


def test_a_get_on_an_expired_stream_is_410_and_closes_it_if_the_sweep_has_not() -> None:
    begun = start(at=T0)
    interaction_id = finish(begun.stream_id, T0 + seconds(8))

    with pytest.raises(StreamClosed):
        resume(interaction_id, T0 + seconds(8 + 60))
    assert Stream.objects.get(id=begun.stream_id).close_reason == "expired"


def test_a_start_frees_the_slots_of_expired_streams_of_its_ispb(settings: Any) -> None:
    settings.PIX_MAX_STREAMS_PER_ISPB = 1
    old = start(at=T0)
    finish(old.stream_id, T0 + seconds(8))

    new = start(at=T0 + seconds(8 + 60))

    assert Stream.objects.get(id=old.stream_id).close_reason == "expired"
    assert Stream.objects.get(id=new.stream_id).slot == 1


def test_delete_of_an_expired_stream_records_the_expiry_and_answers_200() -> None:
    begun = start(at=T0)
    interaction_id = finish(begun.stream_id, T0 + seconds(8))

    services.stream_delete(kind=PIX, key=ISPB, interaction_id=interaction_id, now=T0 + seconds(70))

    assert Stream.objects.get(id=begun.stream_id).close_reason == "expired"


# --- Withdrawing an answer that never left (X-6, L-4) ---------------------------------


def test_a_withdrawn_claim_is_pending_again_and_its_id_is_forgotten() -> None:
    messages_generate(ispb=ISPB, count=2)
    begun = start(limit=1)
    assert begun.batch is not None
    nxt = resume(begun.batch.interaction_id, T0 + seconds(1), limit=1)
    assert nxt.batch is not None

    released = services.answer_withdraw(
        stream_id=begun.stream_id, interaction_id=nxt.batch.interaction_id, abandon=False
    )

    assert released == 1
    assert pending() == 1
    assert not Interaction.objects.filter(id=nxt.batch.interaction_id).exists()
    stream = Stream.objects.get(id=begun.stream_id)
    assert (stream.delivered_count, stream.acknowledged_count, stream.closed_at) == (1, 1, None)
    assert events("stream.released")[0]["count"] == 1
    with pytest.raises(StreamNotFound):
        resume(nxt.batch.interaction_id, T0 + seconds(2))
    # The 204 of the next request gives the latest id that did leave.
    assert finish(begun.stream_id, T0 + seconds(9)) == begun.batch.interaction_id


def test_a_start_whose_answer_never_left_releases_its_claim_and_its_slot() -> None:
    messages_generate(ispb=ISPB, count=1)
    begun = start()
    assert begun.batch is not None

    services.answer_withdraw(
        stream_id=begun.stream_id, interaction_id=begun.batch.interaction_id, abandon=True
    )

    stream = Stream.objects.get(id=begun.stream_id)
    assert stream.close_reason == "abandoned"
    assert pending() == 1
    assert start().batch is not None  # the next collector gets the message


# --- Pruning ----------------------------------------------------------------------------


def test_closed_streams_and_their_ids_are_pruned_after_the_retention(settings: Any) -> None:
    settings.STREAMS_RETENTION = timedelta(hours=1)
    messages_generate(ispb=ISPB, count=1)
    begun = start(at=T0)
    assert begun.batch is not None
    services.stream_delete(kind=PIX, key=ISPB, interaction_id=begun.batch.interaction_id, now=T0)
    kept = start(at=T0)

    assert services.streams_prune(now=T0 + timedelta(minutes=59))["streams"] == 0
    assert services.streams_prune(now=T0 + timedelta(minutes=61))["streams"] == 1

    assert list(Stream.objects.values_list("id", flat=True)) == [kept.stream_id]
    message = PixMessage.objects.get()
    # The message stays delivered: delivered_at decides, not the pruned id.
    assert (message.interaction_id, message.delivered_at) == (None, T0)
    assert start(at=T0).batch is None


def test_the_claim_statement_locks_with_skip_locked_on_postgresql() -> None:
    """The claim's shape (one statement, SKIP LOCKED, the guard) is what the races rely on."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers instead")
    begun = start()
    messages_generate(ispb=ISPB, count=1)
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        services.stream_claim(kind=PIX, stream_id=begun.stream_id, key=ISPB, limit=1)
    claims = [q["sql"] for q in queries.captured_queries if "SKIP LOCKED" in q["sql"]]
    assert len(claims) == 1
    assert claims[0].startswith("WITH picked AS MATERIALIZED (SELECT id FROM streams_pixmessage")
    assert "streams_pixmessage.delivered_at IS NULL RETURNING" in claims[0]


def test_pending_keys_names_the_waited_keys_that_have_pending_items() -> None:
    messages_generate(ispb=ISPB, count=2)
    messages_generate(ispb=OTHER, count=1)
    start(key=OTHER)  # takes OTHER's only message

    assert services.pending_keys(kind=PIX, keys=[ISPB, OTHER, "99999999"]) == [ISPB]
    assert services.pending_keys(kind=PIX, keys=[]) == []


@pytest.mark.django_db(transaction=True)
def test_a_request_that_finds_nothing_writes_nothing_until_its_204() -> None:
    """An idle long poll's look costs no WAL flush: no row written, none locked."""
    if connection.vendor != "postgresql":
        pytest.skip("asks PostgreSQL whether the transaction was given an id")
    begun = start()
    interaction_id = finish(begun.stream_id, T0 + seconds(8))

    def xid_after(step: Any) -> Any:
        from django.db import transaction

        with transaction.atomic(), connection.cursor() as cursor:
            step()
            cursor.execute("SELECT pg_current_xact_id_if_assigned()")
            return cursor.fetchone()[0]

    assert xid_after(lambda: resume(interaction_id, T0 + seconds(9))) is None
    assert (
        xid_after(
            lambda: services.stream_claim(kind=PIX, stream_id=begun.stream_id, key=ISPB, limit=10)
        )
        is None
    )
    assert xid_after(lambda: finish(begun.stream_id, T0 + seconds(17))) is not None
