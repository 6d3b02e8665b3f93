"""The admin shows streams and messages; the scheduler's sweep expires and prunes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from parley.outbox.models import OutboxEvent
from parley.streams import services, tasks
from parley.streams.models import PixMessage, Stream
from parley.streams.pix.kind import PIX
from parley.streams.pix.services import messages_generate

pytestmark = pytest.mark.django_db

ISPB = "32074986"


def test_the_stream_list_shows_open_streams_per_ispb_with_their_counts(admin_client: Any) -> None:
    messages_generate(ispb=ISPB, count=5)
    first = services.stream_start(kind=PIX, key=ISPB, limit=3)
    assert first.batch is not None
    services.stream_resume(
        kind=PIX, key=ISPB, interaction_id=first.batch.interaction_id, limit=1
    )  # acknowledges the first three, takes a fourth
    services.stream_start(kind=PIX, key=ISPB, limit=1)
    services.stream_start(kind=PIX, key="11111111", limit=1)

    page = admin_client.get("/admin/streams/stream/")
    table = page.content.decode().split('id="open-streams-by-key"')[1].split("</table>")[0]

    assert page.status_code == 200
    rows = [
        [cell.split(">")[-1] for cell in row.split("</td>")[:-1]] for row in table.split("<tr>")[2:]
    ]
    assert rows == [["pix", "11111111", "1", "0", "0"], ["pix", ISPB, "2", "5", "3"]]
    opened = admin_client.get("/admin/streams/stream/", {"state": "open", "q": ISPB})
    assert opened.content.decode().count('class="field-kind"') == 2
    detail = admin_client.get(f"/admin/streams/stream/{first.stream_id}/change/")
    assert detail.status_code == 200
    assert first.batch.interaction_id in detail.content.decode()


def test_messages_are_searchable_and_filtered_by_delivery(admin_client: Any) -> None:
    messages_generate(ispb=ISPB, count=3)
    begun = services.stream_start(kind=PIX, key=ISPB, limit=1)
    assert begun.batch is not None
    delivered = PixMessage.objects.get(id=begun.batch.item_ids[0])
    url = "/admin/streams/pixmessage/"

    with CaptureQueriesContext(connection) as queries:
        pending = admin_client.get(url, {"delivery": "pending"})
    shown = admin_client.get(url, {"delivery": "delivered"})
    found = admin_client.get(url, {"q": delivered.end_to_end_id})

    assert pending.content.decode().count('class="field-end_to_end_id"') == 2
    assert len(queries) < 12  # the interaction comes with the row, not one query per row
    assert delivered.end_to_end_id in shown.content.decode()
    assert shown.content.decode().count('class="field-end_to_end_id"') == 1
    assert found.content.decode().count('class="field-end_to_end_id"') == 1
    assert admin_client.get("/admin/streams/replyitem/").status_code == 200


def test_the_sweep_closes_expired_streams_and_prunes_old_ones(settings: Any) -> None:
    settings.STREAMS_RETENTION = timedelta(hours=1)
    with time_machine.travel(timezone.now(), tick=False) as clock:
        begun = services.stream_start(kind=PIX, key=ISPB, limit=1)
        services.stream_finish(kind=PIX, stream_id=begun.stream_id)
        clock.shift(PIX.idle_seconds - 1)
        assert tasks.sweep() == {"expired": 0, "streams": 0, "reply_items": 0}

        clock.shift(1)
        assert tasks.sweep() == {"expired": 1, "streams": 0, "reply_items": 0}
        assert Stream.objects.get().close_reason == "expired"
        assert OutboxEvent.objects.filter(type="stream.closed").count() == 1

        clock.shift(3600.5)
        assert tasks.sweep() == {"expired": 0, "streams": 1, "reply_items": 0}
        assert not Stream.objects.exists()
