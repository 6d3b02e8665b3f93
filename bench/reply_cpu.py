"""CPU and round trips per reply, in process, on PostgreSQL (bench/README.md, "Reply cost").

    python bench/reply_cpu.py compare OLD_TREE NEW_TREE [--rounds 5] [--groups 500]

Runs ``measure`` alternately in two source trees of Parley (for example a
``git worktree`` of the last commit and the working tree), so that both see
the same drift of a shared machine, and prints the medians. ``measure``, run
from inside a tree (``cd TREE && python .../reply_cpu.py measure``), imports
that tree's code, fills a scratch database with due groups through the
services, then times ``services.group_reply`` on each of them:

* ``due``: every group is due, so each call claims, writes and records;
* ``not_due``: every group is still collecting, so each call only finds that
  out (what a CLOSE_CONVERSATION task that lost the race to a sweep does).

It reports ``time.process_time`` and wall time per call, the SQL statements
per call and the transactions (COMMIT or ROLLBACK) per call. Celery is not
involved: a sweep calls ``group_reply`` for each due group.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/parley_reply_cpu"


def _setup(database_url: str) -> None:
    """Import the tree in the current directory (not this file's folder) and set Django up."""
    here = str(Path(__file__).resolve().parent)
    sys.path[:] = [p for p in sys.path if p and Path(p).resolve() != Path(here)]
    sys.path.insert(0, os.getcwd())
    os.environ["DATABASE_URL"] = database_url
    os.environ.pop("REDIS_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()


def _ensure_database(database_url: str) -> None:
    import psycopg
    from psycopg import sql

    base, _, name = database_url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def measure(groups: int, messages: int) -> dict[str, Any]:
    import uuid
    from datetime import UTC, datetime, timedelta

    from django.core.management import call_command
    from django.db import connection, connections

    from parley.conversations import services
    from parley.conversations.models import BufferedMessage, Conversation, Message, MessageGroup

    call_command("migrate", verbosity=0)

    def fill() -> list[int]:
        Message.objects.all().delete()
        MessageGroup.objects.all().delete()
        Conversation.objects.all().delete()
        BufferedMessage.objects.all().delete()
        stamp = datetime(2025, 6, 4, 14, 20, tzinfo=UTC)
        for _ in range(groups):
            conversation_id = uuid.uuid4()
            services.conversation_open(conversation_id=conversation_id)
            for n in range(messages):
                services.message_ingest(
                    message_id=uuid.uuid4(),
                    conversation_id=conversation_id,
                    content=f"Hi, I would like information about renting an apartment. {n}",
                    timestamp=stamp + timedelta(seconds=n),
                )
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
        return list(MessageGroup.objects.order_by("pk").values_list("pk", flat=True))

    statements = [0]
    transactions = [0]

    def count_execute(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        statements[0] += 1
        return execute(sql, params, many, context)

    # Each COMMIT or ROLLBACK is a round trip too: count them on the connection.
    db = connections["default"]
    db.ensure_connection()
    original_commit, original_rollback = db._commit, db._rollback  # type: ignore[attr-defined]

    def counted_commit() -> None:
        transactions[0] += 1
        original_commit()

    def counted_rollback() -> None:
        transactions[0] += 1
        original_rollback()

    def run(ids: list[int], expect: str) -> dict[str, float]:
        statements[0] = transactions[0] = 0
        outcomes: dict[str, int] = {}
        db._commit, db._rollback = counted_commit, counted_rollback  # type: ignore[attr-defined]
        try:
            with connection.execute_wrapper(count_execute):
                cpu0, wall0 = time.process_time(), time.perf_counter()
                for group_id in ids:
                    outcome = services.group_reply(group_id=group_id).outcome.value
                    outcomes[outcome] = outcomes.get(outcome, 0) + 1
                cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        finally:
            db._commit, db._rollback = original_commit, original_rollback  # type: ignore[attr-defined]
        if outcomes != {expect: len(ids)}:
            raise SystemExit(f"expected {len(ids)} x {expect}, got {outcomes}")
        n = len(ids)
        return {
            "cpu_ms": 1000 * cpu / n,
            "wall_ms": 1000 * wall / n,
            "statements": statements[0] / n,
            "transactions": transactions[0] / n,
        }

    ids = fill()
    # Not due yet: each call finds the group still collecting.
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE conversations_messagegroup SET reply_due_at = now() + interval '1 hour'"
        )
    not_due = run(ids, "not_due")
    # Due: each call claims, writes and records.
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE conversations_messagegroup SET last_message_at = now() - interval '6 s',"
            " reply_due_at = now() - interval '1 s'"
        )
    due = run(ids, "replied")
    return {"due": due, "not_due": not_due, "groups": len(ids), "messages_per_group": messages}


def compare(old: Path, new: Path, rounds: int, groups: int, messages: int, url: str) -> int:
    script = str(Path(__file__).resolve())
    runs: dict[str, list[dict[str, Any]]] = {"old": [], "new": []}
    for n in range(rounds):
        order = [("old", old), ("new", new)] if n % 2 == 0 else [("new", new), ("old", old)]
        for name, tree in order:
            out = subprocess.run(
                [
                    sys.executable,
                    script,
                    "measure",
                    "--groups",
                    str(groups),
                    "--messages",
                    str(messages),
                    "--url",
                    url,
                ],
                cwd=tree,
                capture_output=True,
                text=True,
                check=False,
            )
            if out.returncode != 0:
                print(out.stdout, out.stderr, file=sys.stderr)
                return out.returncode
            result = json.loads(out.stdout.strip().splitlines()[-1])
            runs[name].append(result)
            print(
                f"round {n + 1} {name}: due {result['due']['cpu_ms']:.3f} ms CPU, "
                f"{result['due']['wall_ms']:.3f} ms wall; "
                f"not due {result['not_due']['cpu_ms']:.3f} ms CPU",
                flush=True,
            )
    print()
    print("median per call      old       new     new/old")
    for path in ("due", "not_due"):
        for key in ("cpu_ms", "wall_ms", "statements", "transactions"):
            a = statistics.median(r[path][key] for r in runs["old"])
            b = statistics.median(r[path][key] for r in runs["new"])
            print(f"{path:8} {key:12} {a:8.3f}  {b:8.3f}  {b / a if a else float('nan'):6.2f}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("measure", "compare"):
        p = sub.add_parser(name)
        p.add_argument("--groups", type=int, default=500)
        p.add_argument("--messages", type=int, default=3, help="messages per group")
        p.add_argument("--url", default=os.environ.get("BENCH_REPLY_DATABASE_URL", DEFAULT_URL))
        if name == "compare":
            p.add_argument("old", type=Path)
            p.add_argument("new", type=Path)
            p.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if args.command == "compare":
        _ensure_database(args.url)
        return compare(args.old, args.new, args.rounds, args.groups, args.messages, args.url)
    _setup(args.url)
    print(json.dumps(measure(args.groups, args.messages)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
