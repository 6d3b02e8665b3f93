"""Auto-close (T-1, T-2) with a controlled clock: idle closes and daily closes in
each tenant's zone, across the DST changes of 2026."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from parley.conversations import services as conversation_services
from parley.conversations.models import Conversation, MessageGroup
from parley.lifecycle import services
from parley.lifecycle.models import ScheduledClose
from parley.lifecycle.services import closes
from parley.lifecycle.tests.helpers import closed_events, status
from parley.tenants.models import Tenant

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("sql_path")]

T0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)


def at(moment: datetime) -> Any:
    return time_machine.travel(moment, tick=False)


# --- Idle (T-1) ----------------------------------------------------------------------


def test_an_idle_conversation_closes_after_its_tenants_idle_time_from_its_last_message(
    make_tenant: Callable[..., Tenant], open_conversation: Any, send_message: Any
) -> None:
    tenant = make_tenant(idle=60)
    with at(T0):
        conversation_id = open_conversation(tenant)
    with at(T0 + timedelta(seconds=30)):
        send_message(conversation_id)
    with at(T0 + timedelta(seconds=89)):
        assert services.idle_close_sweep() == (0, False)
        assert status(conversation_id) == ("OPEN", None)
    with at(T0 + timedelta(seconds=90)):
        assert services.idle_close_sweep() == (1, False)

    conversation = Conversation.objects.get(pk=conversation_id)
    assert (conversation.status, conversation.close_reason) == ("CLOSED", "idle")
    assert conversation.closed_at == T0 + timedelta(seconds=90)
    assert closed_events(conversation_id) == [
        {"conversation_id": str(conversation_id), "reason": "idle"}
    ]


def test_a_conversation_without_messages_is_idle_from_its_creation(
    make_tenant: Callable[..., Tenant], open_conversation: Any
) -> None:
    tenant = make_tenant(idle=300)
    with at(T0):
        conversation_id = open_conversation(tenant)
    with at(T0 + timedelta(seconds=299)):
        services.idle_close_sweep()
        assert status(conversation_id) == ("OPEN", None)
    with at(T0 + timedelta(seconds=300)):
        services.idle_close_sweep()
    assert status(conversation_id) == ("CLOSED", "idle")


def test_idle_time_is_real_elapsed_time_across_a_dst_change(
    make_tenant: Callable[..., Tenant], open_conversation: Any
) -> None:
    """Two hours of idleness across New York's fall back are two real hours."""
    tenant = make_tenant(zone="America/New_York", idle=2 * 3600)
    start = datetime(2026, 11, 1, 5, 0, tzinfo=UTC)  # 01:00 EDT
    with at(start):
        conversation_id = open_conversation(tenant)
    with at(start + timedelta(hours=2) - timedelta(seconds=1)):  # 01:59:59 EST
        services.idle_close_sweep()
        assert status(conversation_id) == ("OPEN", None)
    with at(start + timedelta(hours=2)):
        services.idle_close_sweep()
    assert status(conversation_id) == ("CLOSED", "idle")


def test_idle_close_is_off_by_default(
    make_tenant: Callable[..., Tenant], open_conversation: Any
) -> None:
    tenant = make_tenant()
    with at(T0):
        conversation_id = open_conversation(tenant)
    with at(T0 + timedelta(days=30)):
        assert services.lifecycle_tick() == services.TickReport(0, 0, 0, False)
    assert status(conversation_id) == ("OPEN", None)


def test_a_new_idle_setting_applies_to_conversations_already_open(
    make_tenant: Callable[..., Tenant], open_conversation: Any
) -> None:
    tenant = make_tenant()
    with at(T0):
        conversation_id = open_conversation(tenant)
    with at(T0 + timedelta(hours=1)):
        services.idle_close_sweep()
        assert status(conversation_id) == ("OPEN", None)
        Tenant.objects.filter(pk=tenant.pk).update(idle_close_after=600)
        services.idle_close_sweep()
    assert status(conversation_id) == ("CLOSED", "idle")


def test_each_tenant_has_its_own_idle_time(
    make_tenant: Callable[..., Tenant], open_conversation: Any
) -> None:
    quick, slow, never = make_tenant(idle=60), make_tenant(idle=3600), make_tenant()
    with at(T0):
        ids = [open_conversation(t) for t in (quick, slow, never)]
    with at(T0 + timedelta(minutes=5)):
        services.idle_close_sweep()

    assert [status(i)[0] for i in ids] == ["CLOSED", "OPEN", "OPEN"]


def test_an_idle_close_answers_the_pending_group_at_once(
    make_tenant: Callable[..., Tenant], open_conversation: Any, send_message: Any, settings: Any
) -> None:
    """G-5: the close answers the group that was still collecting."""
    settings.GROUP_WINDOW = timedelta(seconds=30)
    tenant = make_tenant(idle=5)
    with at(T0):
        conversation_id = open_conversation(tenant)
        send_message(conversation_id)
    with at(T0 + timedelta(seconds=5)):
        services.idle_close_sweep()
        group = MessageGroup.objects.get(conversation_id=conversation_id)
        assert group.status == "CLOSED"
        assert group.reply_due_at == T0 + timedelta(seconds=5)
        conversation_services.due_work_sweep()

    assert MessageGroup.objects.get(conversation_id=conversation_id).status == "REPLIED"
    assert status(conversation_id) == ("CLOSED", "idle")


def test_a_message_after_the_sweep_read_keeps_the_conversation_open(
    make_tenant: Callable[..., Tenant], open_conversation: Any, send_message: Any
) -> None:
    """The close re-checks under the conversation's lock (what a racing message takes)."""
    tenant = make_tenant(idle=60)
    with at(T0):
        conversation_id = open_conversation(tenant)
    with at(T0 + timedelta(seconds=61)):
        send_message(conversation_id)  # arrives between the read and the close
        closed = closes._close(conversation_id, "idle", idle_since=T0 + timedelta(seconds=1))

    assert closed is False
    assert status(conversation_id) == ("OPEN", None)
    assert closed_events(conversation_id) == []


def test_a_conversation_closed_by_hand_is_left_alone(
    make_tenant: Callable[..., Tenant], open_conversation: Any
) -> None:
    tenant = make_tenant(idle=60)
    with at(T0):
        conversation_id = open_conversation(tenant)
        conversation_services.conversation_close(conversation_id=conversation_id)
    with at(T0 + timedelta(hours=1)):
        assert services.idle_close_sweep() == (0, False)
    assert status(conversation_id) == ("CLOSED", "manual")
    assert len(closed_events(conversation_id)) == 1


def test_the_idle_sweep_closes_in_bounded_batches_until_none_is_left(
    make_tenant: Callable[..., Tenant], open_conversation: Any, settings: Any
) -> None:
    settings.LIFECYCLE_BATCH_SIZE = 3
    tenant = make_tenant(idle=60)
    with at(T0):
        ids = [open_conversation(tenant) for _ in range(8)]
    with at(T0 + timedelta(minutes=2)), CaptureQueriesContext(connection) as queries:
        assert services.idle_close_sweep() == (8, False)

    assert all(status(i) == ("CLOSED", "idle") for i in ids)
    reads = [q for q in queries.captured_queries if "LIMIT 3" in q["sql"]]
    assert len(reads) == 3  # 3 + 3 + 2: one query per batch


def test_a_tick_with_nothing_due_costs_a_fixed_number_of_queries(
    make_tenant: Callable[..., Tenant], open_conversation: Any
) -> None:
    """However many tenants and open conversations there are (no scan in Python)."""
    tenants = [make_tenant(idle=3600) for _ in range(5)]
    with at(T0):
        for tenant in tenants:
            for _ in range(10):
                open_conversation(tenant)
    with at(T0 + timedelta(minutes=1)), CaptureQueriesContext(connection) as queries:
        services.lifecycle_tick()

    # Plan (one query), due daily closes (one), idle conversations (one).
    assert len(queries.captured_queries) == 3


# --- Daily closes (T-1, T-2) -------------------------------------------------------


def tick_at(moment: datetime) -> services.TickReport:
    with at(moment):
        return services.lifecycle_tick()


@pytest.mark.parametrize(
    ("zone", "close_at", "day", "fires_at"),
    [
        # Spring forward: 02:30 does not exist on 2026-03-08; 03:00 EDT.
        ("America/New_York", time(2, 30), date(2026, 3, 8), "2026-03-08T07:00"),
        # Fall back: 01:30 happens twice on 2026-11-01; the first, EDT.
        ("America/New_York", time(1, 30), date(2026, 11, 1), "2026-11-01T05:30"),
        ("America/New_York", time(18, 0), date(2026, 3, 8), "2026-03-08T22:00"),
        ("Europe/London", time(1, 30), date(2026, 3, 29), "2026-03-29T01:00"),
        ("Europe/London", time(1, 30), date(2026, 10, 25), "2026-10-25T00:30"),
        ("Australia/Lord_Howe", time(2, 15), date(2026, 10, 4), "2026-10-03T15:30"),
        ("Australia/Lord_Howe", time(1, 45), date(2026, 4, 5), "2026-04-04T14:45"),
        ("America/Sao_Paulo", time(23, 0), date(2026, 11, 1), "2026-11-02T02:00"),
    ],
)
def test_a_daily_close_fires_at_its_local_cutoff_and_not_a_second_before(
    make_tenant: Callable[..., Tenant],
    open_conversation: Any,
    zone: str,
    close_at: time,
    day: date,
    fires_at: str,
) -> None:
    cutoff = datetime.fromisoformat(fires_at).replace(tzinfo=UTC)
    tenant = make_tenant(zone=zone, daily=close_at)
    with at(cutoff - timedelta(hours=3)):
        conversation_id = open_conversation(tenant)

    assert tick_at(cutoff - timedelta(hours=2)).planned == 1
    run = ScheduledClose.objects.get(tenant=tenant)
    assert (run.local_date, run.cutoff_at, run.status) == (day, cutoff, "PENDING")

    assert tick_at(cutoff - timedelta(seconds=1)).scheduled_closed == 0
    assert status(conversation_id) == ("OPEN", None)

    assert tick_at(cutoff).scheduled_closed == 1
    assert status(conversation_id) == ("CLOSED", "scheduled")
    run.refresh_from_db()
    assert (run.status, run.closed_count, run.finished_at) == ("DONE", 1, cutoff)
    assert closed_events(conversation_id) == [
        {"conversation_id": str(conversation_id), "reason": "scheduled"}
    ]
    # The next tick plans the next local date.
    tick_at(cutoff + timedelta(seconds=10))
    following = ScheduledClose.objects.get(tenant=tenant, status="PENDING")
    assert following.local_date == day + timedelta(days=1)


def test_the_repeated_fall_back_hour_closes_once(
    make_tenant: Callable[..., Tenant], open_conversation: Any
) -> None:
    """01:30 New York on 2026-11-01 happens at 05:30Z and again at 06:30Z: one close."""
    tenant = make_tenant(zone="America/New_York", daily=time(1, 30))
    first, second = (
        datetime(2026, 11, 1, 5, 30, tzinfo=UTC),
        datetime(2026, 11, 1, 6, 30, tzinfo=UTC),
    )
    tick_at(first - timedelta(hours=1))
    with at(first - timedelta(minutes=10)):
        before = open_conversation(tenant)
    tick_at(first)
    with at(first + timedelta(minutes=15)):
        between = open_conversation(tenant)
    for minute in range(0, 60, 10):
        tick_at(second + timedelta(minutes=minute))

    assert status(before) == ("CLOSED", "scheduled")
    assert status(between) == ("OPEN", None)
    assert ScheduledClose.objects.filter(tenant=tenant, local_date=date(2026, 11, 1)).count() == 1
    # It closes at the next day's 01:30, EST now.
    tick_at(datetime(2026, 11, 2, 6, 30, tzinfo=UTC))
    assert status(between) == ("CLOSED", "scheduled")


def test_a_late_tick_closes_only_what_was_open_at_the_cutoff(
    make_tenant: Callable[..., Tenant], open_conversation: Any
) -> None:
    """The scheduler was down across 18:00; conversations opened after 18:00 stay open."""
    tenant = make_tenant(zone="America/Sao_Paulo", daily=time(18, 0))
    cutoff = datetime(2026, 5, 4, 21, 0, tzinfo=UTC)
    tick_at(cutoff - timedelta(hours=1))
    with at(cutoff - timedelta(minutes=1)):
        before = open_conversation(tenant)
    with at(cutoff + timedelta(minutes=20)):
        after = open_conversation(tenant)

    assert tick_at(cutoff + timedelta(minutes=40)).scheduled_closed == 1
    assert status(before) == ("CLOSED", "scheduled")
    assert status(after) == ("OPEN", None)


def test_a_close_time_set_after_todays_cutoff_first_fires_tomorrow(
    make_tenant: Callable[..., Tenant], open_conversation: Any
) -> None:
    tenant = make_tenant(zone="UTC")
    with at(T0):  # 12:00 UTC
        conversation_id = open_conversation(tenant)
    Tenant.objects.filter(pk=tenant.pk).update(daily_close_at=time(7, 0))

    tick_at(T0 + timedelta(minutes=1))
    assert status(conversation_id) == ("OPEN", None)
    assert ScheduledClose.objects.get(tenant=tenant).local_date == date(2026, 5, 5)
    tick_at(datetime(2026, 5, 5, 7, 0, tzinfo=UTC))
    assert status(conversation_id) == ("CLOSED", "scheduled")


def test_a_changed_close_time_or_zone_re_plans_and_a_cleared_one_cancels(
    make_tenant: Callable[..., Tenant],
) -> None:
    tenant = make_tenant(zone="UTC", daily=time(18, 0))
    tick_at(T0)
    assert ScheduledClose.objects.get(tenant=tenant).cutoff_at == datetime(
        2026, 5, 4, 18, 0, tzinfo=UTC
    )

    Tenant.objects.filter(pk=tenant.pk).update(daily_close_at=time(17, 0))
    assert tick_at(T0).planned == 1
    assert ScheduledClose.objects.get(tenant=tenant).cutoff_at == datetime(
        2026, 5, 4, 17, 0, tzinfo=UTC
    )

    Tenant.objects.filter(pk=tenant.pk).update(time_zone="Asia/Kolkata")  # +05:30
    tick_at(T0)  # 17:30 in Kolkata: today's 17:00 has passed
    run = ScheduledClose.objects.get(tenant=tenant)
    assert (run.local_date, run.cutoff_at) == (
        date(2026, 5, 5),
        datetime(2026, 5, 5, 11, 30, tzinfo=UTC),
    )

    assert tick_at(T0).planned == 0  # nothing changed: nothing re-planned
    Tenant.objects.filter(pk=tenant.pk).update(daily_close_at=None)
    tick_at(T0)
    assert not ScheduledClose.objects.filter(tenant=tenant).exists()


def test_a_tenant_with_an_unknown_zone_gets_no_daily_close_and_the_tick_goes_on(
    make_tenant: Callable[..., Tenant], open_conversation: Any
) -> None:
    """Only a write that skipped validation can store one; the others still close."""
    broken = make_tenant(zone="UTC", daily=time(12, 0))
    Tenant.objects.filter(pk=broken.pk).update(time_zone="Mars/Olympus_Mons")
    fine = make_tenant(zone="UTC", daily=time(12, 0))
    with at(T0 - timedelta(hours=1)):
        ids = [open_conversation(broken), open_conversation(fine)]
    tick_at(T0 - timedelta(minutes=30))
    tick_at(T0)

    assert [status(i)[0] for i in ids] == ["OPEN", "CLOSED"]
    assert not ScheduledClose.objects.filter(tenant=broken).exists()


def test_a_daily_close_runs_in_batches_across_ticks_when_time_runs_out(
    make_tenant: Callable[..., Tenant], open_conversation: Any, settings: Any
) -> None:
    settings.LIFECYCLE_BATCH_SIZE = 4
    tenant = make_tenant(zone="UTC", daily=time(12, 0))
    with at(T0 - timedelta(hours=1)):
        ids = [open_conversation(tenant) for _ in range(10)]
        services.daily_closes_plan()
    run = ScheduledClose.objects.get(tenant=tenant)

    with at(T0):
        # No time left after the first batch: the close stays due for the next tick.
        assert services.daily_close_run(run_id=run.pk, deadline=0) == (4, False)
    run.refresh_from_db()
    assert (run.status, run.closed_count, run.due_at) == ("RUNNING", 4, T0)

    with at(T0 + timedelta(seconds=10)):
        assert services.daily_closes_run(deadline=float("inf")) == (6, False)
    run.refresh_from_db()
    assert (run.status, run.closed_count) == ("DONE", 10)
    assert all(status(i) == ("CLOSED", "scheduled") for i in ids)


def test_a_daily_close_whose_runner_died_is_taken_over_when_its_lease_ends(
    make_tenant: Callable[..., Tenant], open_conversation: Any
) -> None:
    tenant = make_tenant(zone="UTC", daily=time(12, 0))
    with at(T0 - timedelta(hours=1)):
        conversation_id = open_conversation(tenant)
        services.daily_closes_plan()
    run = ScheduledClose.objects.get(tenant=tenant)
    # A runner claimed it and died before closing anything.
    ScheduledClose.objects.filter(pk=run.pk).update(
        status="RUNNING", started_at=T0, due_at=T0 + closes.RUN_LEASE
    )

    assert tick_at(T0 + timedelta(seconds=30)).scheduled_closed == 0
    assert tick_at(T0 + closes.RUN_LEASE).scheduled_closed == 1
    assert status(conversation_id) == ("CLOSED", "scheduled")
    run.refresh_from_db()
    assert (run.status, run.started_at) == ("DONE", T0)


def test_a_claimed_daily_close_cannot_be_claimed_again(
    make_tenant: Callable[..., Tenant], open_conversation: Any
) -> None:
    tenant = make_tenant(zone="UTC", daily=time(12, 0))
    with at(T0 - timedelta(hours=1)):
        open_conversation(tenant)
        services.daily_closes_plan()
    run = ScheduledClose.objects.get(tenant=tenant)
    with at(T0):
        assert services.daily_close_run(run_id=run.pk) == (1, True)
        assert services.daily_close_run(run_id=run.pk) == (0, True)


def test_the_daily_close_and_idle_close_of_one_conversation_close_it_once(
    make_tenant: Callable[..., Tenant], open_conversation: Any
) -> None:
    tenant = make_tenant(zone="UTC", daily=time(12, 0), idle=60)
    with at(T0 - timedelta(hours=2)):
        conversation_id = open_conversation(tenant)
    tick_at(T0 - timedelta(hours=1, minutes=58))  # idle closes it, and plans today's close
    tick_at(T0)

    assert status(conversation_id) == ("CLOSED", "idle")
    assert len(closed_events(conversation_id)) == 1
    assert ScheduledClose.objects.get(tenant=tenant, local_date=T0.date()).closed_count == 0


def test_conversations_of_other_tenants_are_not_closed_by_a_daily_close(
    make_tenant: Callable[..., Tenant], open_conversation: Any
) -> None:
    closing = make_tenant(zone="UTC", daily=time(12, 0))
    other = make_tenant(zone="UTC")
    with at(T0 - timedelta(hours=1)):
        mine, theirs = open_conversation(closing), open_conversation(other)
    tick_at(T0 - timedelta(minutes=1))
    tick_at(T0)

    assert status(mine)[0] == "CLOSED"
    assert status(theirs)[0] == "OPEN"


def test_unknown_conversations_are_ignored_by_the_close_helper() -> None:
    assert closes._close(uuid.uuid4(), "scheduled") is False
