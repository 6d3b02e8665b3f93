"""What the database says: pending work, reply delays and the final exactly-once audit.

Plain SQL over the application's tables, so the bench needs no Django settings
of its own and reads exactly what was committed.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

Conn = psycopg.Connection[Any]

MESSAGE = "conversations_message"
GROUP = "conversations_messagegroup"
CONVERSATION = "conversations_conversation"
BUFFERED = "conversations_bufferedmessage"


def connect(url: str) -> Conn:
    return psycopg.connect(url, autocommit=True, connect_timeout=5)


def pending(conn: Conn) -> tuple[int, int]:
    """Groups that still owe a reply (FAILED ones owe none), and messages still buffered."""
    row = conn.execute(
        f"SELECT (SELECT count(*) FROM {GROUP} WHERE status NOT IN ('REPLIED', 'FAILED')),"
        f" (SELECT count(*) FROM {BUFFERED} WHERE status = 'BUFFERED')"
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def counts(conn: Conn) -> tuple[int, int]:
    """INBOUND messages and groups stored so far."""
    row = conn.execute(
        f"SELECT (SELECT count(*) FROM {MESSAGE} WHERE type = 'INBOUND'),"
        f" (SELECT count(*) FROM {GROUP})"
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def wait_until_settled(conn: Conn, *, minimum: float, maximum: float) -> float:
    """Wait at least ``minimum`` s, then until nothing is pending (or ``maximum`` s)."""
    start = time.monotonic()
    time.sleep(minimum)
    while time.monotonic() - start < maximum:
        groups, _ = pending(conn)
        if groups == 0:
            break
        time.sleep(0.25)
    return time.monotonic() - start


@dataclass(frozen=True)
class GroupDelay:
    delay_s: float
    size: int
    # "window": closed by the trailing debounce (G-1); "close": answered at once
    # by CLOSE_CONVERSATION (G-5), so its delay is legitimately under the window.
    cause: str
    replied_at: datetime


def reply_delays(conn: Conn, *, since: datetime, until: datetime) -> list[GroupDelay]:
    """Each replied group opened in [since, until): last message arrival to reply commit."""
    rows = conn.execute(
        f"""
        SELECT EXTRACT(EPOCH FROM g.replied_at - g.last_message_at)::float8,
               (SELECT count(*) FROM {MESSAGE} m WHERE m.group_id = g.id),
               g.closed_at IS NOT NULL AND g.closed_at = c.closed_at,
               g.replied_at
        FROM {GROUP} g JOIN {CONVERSATION} c ON c.id = g.conversation_id
        WHERE g.status = 'REPLIED' AND g.opened_at >= %s AND g.opened_at < %s
        ORDER BY g.replied_at
        """,
        [since, until],
    ).fetchall()
    return [
        GroupDelay(float(d), int(n), "close" if closed else "window", at)
        for d, n, closed, at in rows
    ]


@dataclass(frozen=True)
class Audit:
    messages: int  # INBOUND messages stored
    groups: int
    replies: int  # OUTBOUND messages
    conversations: int
    accepted: int  # distinct message ids the clients got a 202 for
    lost_messages: int  # accepted, not expired, yet not in a replied or FAILED group
    lost_groups: int  # groups without a reply, and not FAILED with a reason
    duplicated_groups: int  # groups with more than one reply
    duplicated_messages: int  # message ids listed in more than one reply
    ungrouped: int  # INBOUND messages without a group
    reply_mismatch: int  # replies whose id list is not exactly their group's messages
    orphans_adopted: int
    orphans_expired: int  # accepted, then expired because the conversation came late
    unacknowledged: int  # stored, but the client never saw the 202 (timeout, reset)
    failed_groups: int = 0  # FAILED with a reason (G-8): counted apart, neither lost nor answered
    failed_messages: int = 0  # accepted messages of those groups

    @property
    def lost(self) -> int:
        return self.lost_messages + self.lost_groups

    @property
    def duplicated(self) -> int:
        return self.duplicated_groups + self.duplicated_messages


def audit(conn: Conn, accepted: set[str], tolerance_s: float) -> Audit:
    """Check G-3 from the data: every accepted message in one group, every group one reply
    or FAILED with a reason (G-8, counted apart)."""
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS bench_accepted (id uuid PRIMARY KEY)")
    conn.execute("TRUNCATE bench_accepted")
    with conn.cursor().copy("COPY bench_accepted (id) FROM STDIN") as copy:
        for message_id in accepted:
            copy.write_row((message_id,))

    def scalar(query: str, params: list[object] | None = None) -> int:
        row = conn.execute(query, params or []).fetchone()
        assert row is not None
        return int(row[0])

    # An orphan may legitimately expire: its conversation came after the tolerance.
    expired_ok = f"""
        SELECT 1 FROM {BUFFERED} b LEFT JOIN {CONVERSATION} c ON c.id = b.conversation_id
        WHERE b.id = a.id AND b.status = 'EXPIRED'
          AND (c.id IS NULL OR c.created_at - b.received_at > make_interval(secs => %s))
    """
    failed_with_reason = f"""
        SELECT 1 FROM {MESSAGE} m JOIN {GROUP} g ON g.id = m.group_id
        WHERE m.id = a.id AND g.status = 'FAILED' AND coalesce(g.last_error, '') <> ''
    """
    lost_messages = scalar(
        f"""
        SELECT count(*) FROM bench_accepted a
        WHERE NOT EXISTS (
            SELECT 1 FROM {MESSAGE} m JOIN {MESSAGE} r ON r.reply_to_id = m.group_id
            WHERE m.id = a.id AND m.type = 'INBOUND' AND r.type = 'OUTBOUND')
          AND NOT EXISTS ({expired_ok})
          AND NOT EXISTS ({failed_with_reason})
        """,
        [tolerance_s],
    )
    failed_messages = scalar(
        f"SELECT count(*) FROM bench_accepted a WHERE EXISTS ({failed_with_reason})"
    )
    orphans_expired = scalar(
        f"SELECT count(*) FROM bench_accepted a WHERE EXISTS ({expired_ok})", [tolerance_s]
    )
    orphans_adopted = scalar(
        f"SELECT count(*) FROM {BUFFERED} b JOIN bench_accepted a ON a.id = b.id"
        " WHERE b.status = 'ADOPTED'"
    )
    unacknowledged = scalar(
        f"SELECT count(*) FROM {MESSAGE} m WHERE m.type = 'INBOUND'"
        " AND NOT EXISTS (SELECT 1 FROM bench_accepted a WHERE a.id = m.id)"
    )
    lost_groups = scalar(
        f"SELECT count(*) FROM {GROUP} g WHERE NOT EXISTS"
        f" (SELECT 1 FROM {MESSAGE} r WHERE r.reply_to_id = g.id AND r.type = 'OUTBOUND')"
        " AND NOT (g.status = 'FAILED' AND coalesce(g.last_error, '') <> '')"
    )
    failed_groups = scalar(f"SELECT count(*) FROM {GROUP} WHERE status = 'FAILED'")
    duplicated_groups = scalar(
        f"SELECT count(*) FROM (SELECT reply_to_id FROM {MESSAGE} WHERE type = 'OUTBOUND'"
        " GROUP BY reply_to_id HAVING count(*) > 1) d"
    )
    ungrouped = scalar(
        f"SELECT count(*) FROM {MESSAGE} WHERE type = 'INBOUND' AND group_id IS NULL"
    )

    # Read every reply's text: which ids did each one answer (G-2)?
    members: dict[int, set[str]] = {}
    for message_id, group_id in conn.execute(
        f"SELECT id::text, group_id FROM {MESSAGE} WHERE type = 'INBOUND' AND group_id IS NOT NULL"
    ):
        members.setdefault(int(group_id), set()).add(str(message_id))
    answered: Counter[str] = Counter()
    mismatch = 0
    replies = 0
    for group_id, content in conn.execute(
        f"SELECT reply_to_id, content FROM {MESSAGE} WHERE type = 'OUTBOUND'"
    ):
        replies += 1
        ids = str(content).split("\n")[1:]
        answered.update(ids)
        if set(ids) != members.get(int(group_id), set()) or len(ids) != len(set(ids)):
            mismatch += 1
    duplicated_messages = sum(1 for n in answered.values() if n > 1)

    return Audit(
        messages=scalar(f"SELECT count(*) FROM {MESSAGE} WHERE type = 'INBOUND'"),
        groups=scalar(f"SELECT count(*) FROM {GROUP}"),
        replies=replies,
        conversations=scalar(f"SELECT count(*) FROM {CONVERSATION}"),
        accepted=len(accepted),
        lost_messages=lost_messages,
        lost_groups=lost_groups,
        duplicated_groups=duplicated_groups,
        duplicated_messages=duplicated_messages,
        ungrouped=ungrouped,
        reply_mismatch=mismatch,
        orphans_adopted=orphans_adopted,
        orphans_expired=orphans_expired,
        unacknowledged=unacknowledged,
        failed_groups=failed_groups,
        failed_messages=failed_messages,
    )
