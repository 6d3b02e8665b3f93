"""The conversational load: many conversations driven by locust (run as a subprocess).

    python -m bench.conversations --host http://127.0.0.1:8000 --rate 400 --seconds 60 \
        --out conversations.tsv

Each locust user plays conversations one after another until the deadline:

* NEW_CONVERSATION, then bursts of 1 to 5 NEW_MESSAGEs with gaps of 0 to 4 s
  (so a burst is one group), separated by pauses longer than the group
  window (so each burst is its own group);
* some conversations start out of order: their first NEW_MESSAGE comes up to
  3 s before the NEW_CONVERSATION (less than the orphan tolerance), so it is
  buffered and then adopted;
* a few messages are delivered twice (an identical replay, answered 202);
* half of the conversations end with CLOSE_CONVERSATION, some while a group
  is still collecting (it is answered at once, G-5).

The number of users is chosen so that the expected request rate is ``--rate``
(the orchestrator passes half of the measured saturation throughput). Every
request is written to ``--out`` as a tab-separated line: send time (epoch s),
latency (ms), kind (C, M, R, X: conversation, message, replay, close), HTTP
status, message id, conversation id and the 202's status (queued, buffered).

Importing this module monkey-patches the standard library for gevent (locust
does it on import), so the orchestrator never imports it.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gevent
from locust import FastHttpUser, constant, events, task
from locust.env import Environment
from locust.exception import StopUser
from locust.log import setup_logging

from bench.scenario import layout, plan_conversation

HEADERS = {"Content-Type": "application/json"}
WORDS = (
    "hello",
    "I would like",
    "information about",
    "renting an apartment",
    "near the station",
    "olá",
    "¿cuánto cuesta?",
    "merci",
    "👋",
    "thanks!",
)

# Filled by main(); read by every user.
SETTINGS: dict[str, float] = {}
RECORDS: list[str] = []
FINISHED: list[int] = []


def _now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class ConversationUser(FastHttpUser):
    wait_time = constant(0)
    # One connection per user: gunicorn's sync workers close it after each reply anyway.
    concurrency = 1

    def on_start(self) -> None:
        self.rng = random.Random()
        self.deadline = SETTINGS["deadline"]
        gevent.sleep(self.rng.uniform(0.0, SETTINGS["stagger"]))

    def _post(self, kind: str, body: bytes, message_id: str, conversation_id: str) -> int:
        sent_at = time.time()
        t0 = time.perf_counter()
        with self.client.post(
            "/webhook/", data=body, headers=HEADERS, name=kind, catch_response=True
        ) as response:
            latency_ms = (time.perf_counter() - t0) * 1000.0
            status = response.status_code or 0
            accepted = ""
            if status == 202:
                accepted = "buffered" if b'"buffered"' in (response.content or b"") else "queued"
            expected = {"C": 201, "M": 202, "R": 202, "X": 200}[kind]
            if status == expected:
                response.success()
            else:
                response.failure(f"HTTP {status}")
        RECORDS.append(
            f"{sent_at:.6f}\t{latency_ms:.3f}\t{kind}\t{status}\t{message_id}\t"
            f"{conversation_id}\t{accepted}"
        )
        return status

    def _message(self, conversation_id: str, seq: int) -> tuple[str, bytes]:
        message_id = str(uuid.uuid4())
        content = " ".join(self.rng.choices(WORDS, k=4)) + f" #{seq}"
        body = json.dumps(
            {
                "type": "NEW_MESSAGE",
                "timestamp": _now_iso(),
                "data": {
                    "id": message_id,
                    "conversation_id": conversation_id,
                    "content": content,
                },
            },
            ensure_ascii=False,
        ).encode()
        return message_id, body

    def _conversation_event(self, kind: str, conversation_id: str) -> bytes:
        event = "NEW_CONVERSATION" if kind == "C" else "CLOSE_CONVERSATION"
        return json.dumps(
            {"type": event, "timestamp": _now_iso(), "data": {"id": conversation_id}}
        ).encode()

    @task
    def converse(self) -> None:
        while time.time() < self.deadline:
            self._one_conversation()
        FINISHED.append(1)
        raise StopUser

    def _one_conversation(self) -> None:
        conversation_id = str(uuid.uuid4())
        opened = orphan_sent = False
        plan = plan_conversation(self.rng, SETTINGS["window"], SETTINGS["tolerance"])
        for seq, step in enumerate(plan):
            if step.kind != "C" and time.time() + step.delay >= self.deadline:
                # The run is over; only a pending NEW_CONVERSATION still goes out.
                gevent.sleep(max(0.0, self.deadline - time.time()))
                break
            if step.delay:
                gevent.sleep(step.delay)
            if step.kind == "M":
                message_id, body = self._message(conversation_id, seq)
                self._post("M", body, message_id, conversation_id)
                orphan_sent = orphan_sent or not opened
                if step.replay:
                    self._post("R", body, message_id, conversation_id)
            else:
                body = self._conversation_event(step.kind, conversation_id)
                self._post(step.kind, body, "", conversation_id)
                opened = opened or step.kind == "C"
        if orphan_sent and not opened:
            # Out of order and cut short by the deadline: open it, so that
            # the buffered message is adopted rather than left to expire.
            self._post("C", self._conversation_event("C", conversation_id), "", conversation_id)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", required=True)
    parser.add_argument("--rate", type=float, required=True, help="target webhook requests/s")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--window", type=float, default=5.0)
    parser.add_argument("--tolerance", type=float, default=6.0)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--summary", type=Path, required=True)
    args = parser.parse_args(argv)

    setup_logging("WARNING")
    # Every user starts at once and then waits a random time: no ramp is needed.
    logging.getLogger("locust.runners").setLevel(logging.ERROR)
    plan = layout(args.rate, args.seconds, args.window, args.tolerance)
    users, stagger = plan.users, plan.stagger
    per_conversation, duration = plan.requests_per_conversation, plan.conversation_seconds
    start = time.time()
    SETTINGS.update(
        window=args.window,
        tolerance=args.tolerance,
        stagger=stagger,
        deadline=start + args.seconds,
    )
    env = Environment(user_classes=[ConversationUser], host=args.host, events=events)
    runner = env.create_local_runner()
    runner.start(users, spawn_rate=max(users, 1) * 10)
    # Users stop themselves at the deadline, after finishing the request in hand.
    grace = start + args.seconds + 30
    while time.time() < grace and len(FINISHED) < users:
        gevent.sleep(0.25)
    runner.quit()
    ended = time.time()
    args.out.write_text("\n".join(RECORDS) + ("\n" if RECORDS else ""))
    summary: dict[str, Any] = {
        "users": users,
        "target_rps": args.rate,
        "expected_requests_per_conversation": round(per_conversation, 3),
        "expected_conversation_seconds": round(duration, 3),
        "stagger_s": round(stagger, 3),
        "started_at": start,
        "ended_at": ended,
        "finished_users": len(FINISHED),
        "cpu_seconds": time.process_time(),
    }
    args.summary.write_text(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
