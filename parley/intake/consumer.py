"""The queue consumer process: ``make consume`` (``manage.py consume``).

Threads:

* the **connection thread** (``run``) owns the kombu connection: it declares
  what it reads, consumes, acknowledges, keeps the partition leases (Redis,
  filesystem) and samples the lag. kombu channels are not thread-safe, so
  only this thread touches the broker.
* **workers** (``INTAKE_WORKERS``) take ready conversation lanes
  (:mod:`parley.intake.lanes`), apply up to ``INTAKE_BATCH_SIZE`` events in
  one transaction (:func:`parley.intake.services.batch_apply`), and hand the
  messages back for their ack once the transaction has committed.

A delivery's life:

1. Parse the body once; a body that does not parse is a dead letter.
2. Wait in its conversation's lane; a worker applies it in a batch.
3. Committed: ack. A refusal was stored as a dead letter in the same
   transaction and is acked too (Q-7).
4. Anything else (the database went away, a bug): nothing is acked. The
   batch is retried event by event with a backoff; an event that has failed
   ``INTAKE_MAX_DELIVERIES`` times (counting the broker's deliveries where it
   reports them) becomes a ``gave_up`` dead letter, and is acked only once
   that is stored. While nothing can be stored, nothing is acked, and a
   consumer that dies leaves the message to the broker.

SIGTERM (or Ctrl-C) stops taking new messages, applies and acks what was
already received (within ``INTAKE_SHUTDOWN_SECONDS``), releases the leases
and exits. A lost connection is re-made with a backoff, forever.
"""

from __future__ import annotations

import contextlib
import functools
import os
import queue
import signal
import socket
import threading
import time
import uuid
from collections.abc import Hashable
from dataclasses import dataclass
from types import FrameType
from typing import Any

import structlog
from django.conf import settings
from django.db import close_old_connections, connection
from kombu import Connection, Consumer, Queue
from kombu.message import Message

from parley.intake import metrics, services
from parley.intake.lanes import Lanes
from parley.intake.leases import LeaseKeeper
from parley.intake.services import Incoming, Outcome
from parley.intake.transports import Transport

log = structlog.get_logger(__name__)

_BACKOFF_SECONDS = (0.2, 0.5, 1.0, 2.0, 5.0)


@dataclass
class Delivery:
    message: Message
    item: Incoming
    generation: int
    attempts: int = 0

    @property
    def lane(self) -> Hashable:
        # A body that did not parse has no conversation: a lane of its own.
        return self.item.key if self.item.key is not None else id(self)


class EventConsumer:
    def __init__(
        self,
        transport: Transport,
        *,
        workers: int | None = None,
        batch_size: int | None = None,
        prefetch: int | None = None,
        max_deliveries: int | None = None,
    ) -> None:
        self.transport = transport
        self.workers = workers or settings.INTAKE_WORKERS
        self.batch_size = batch_size or settings.INTAKE_BATCH_SIZE
        self.prefetch = prefetch or settings.INTAKE_PREFETCH
        self.max_deliveries = max_deliveries or settings.INTAKE_MAX_DELIVERIES
        self.linger = settings.INTAKE_BATCH_LINGER_SECONDS
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lanes: Lanes[Delivery] = Lanes()
        self.acks: queue.SimpleQueue[Delivery] = queue.SimpleQueue()
        self.stopping = threading.Event()
        self._generation = 0
        self._threads: list[threading.Thread] = []
        self._consumers: dict[str, Consumer] = {}
        self._leases: LeaseKeeper | None = None
        if transport.leased:
            self._leases = LeaseKeeper(
                owner=self.owner,
                source=transport.source,
                queues=[q.name for q in transport.queues()],
                seconds=settings.INTAKE_LEASE_SECONDS,
            )
        self._ready_logged = False

    # --- the process ----------------------------------------------------------

    def install_signal_handlers(self) -> None:
        def stop(signum: int, frame: FrameType | None) -> None:
            log.info("intake_stopping", signal=signal.Signals(signum).name)
            self.stopping.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)

    def run(self) -> None:
        """Consume until stopped; reconnect after any broker failure."""
        for index in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"intake-worker-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)
        failures = 0
        try:
            while not self.stopping.is_set():
                try:
                    with self.transport.connection() as conn:
                        conn.connect()
                        failures = 0
                        self._serve(conn, reconnected=self._generation > 0)
                except Exception as exc:
                    if self.stopping.is_set():
                        break
                    self._generation += 1
                    self._consumers.clear()
                    dropped = self.lanes.discard_pending()
                    pause = _BACKOFF_SECONDS[min(failures, len(_BACKOFF_SECONDS) - 1)]
                    failures += 1
                    log.warning(
                        "intake_connection_lost",
                        error=f"{type(exc).__name__}: {exc}",
                        dropped=dropped,
                        retry_in=pause,
                    )
                    self.stopping.wait(pause)
        finally:
            self._finish()

    def _serve(self, conn: Connection, *, reconnected: bool) -> None:
        channel = conn.channel()
        self.transport.declare(channel)
        generation = self._generation
        if self._leases is None:
            for q in self.transport.queues():
                self._start(channel, q, generation)
        else:
            if reconnected:
                # The messages the lost channel held unacked come back once
                # the broker notices (Redis: kombu's visibility timeout): wait
                # for them, so that they are read before what followed them.
                self.stopping.wait(self.transport.restore_delay())
            self._beat(channel, generation, force_restore=True)
        if not self._ready_logged or reconnected:
            log.info(
                "intake_ready",
                source=self.transport.source,
                queues=[q.name for q in self.transport.queues()],
                owner=self.owner,
                workers=self.workers,
            )
            self._ready_logged = True
        next_beat = next_lag = time.monotonic()
        lease_interval = settings.INTAKE_LEASE_SECONDS / 3
        while not self.stopping.is_set():
            with contextlib.suppress(TimeoutError, socket.timeout):
                conn.drain_events(timeout=0.05)
            self._flush_acks(generation)
            now = time.monotonic()
            if self._leases is not None and now >= next_beat:
                self._beat(channel, generation)
                next_beat = now + lease_interval
            if now >= next_lag:
                self._sample_lag(channel)
                next_lag = now + settings.INTAKE_LAG_SECONDS
        self._drain(conn, generation)

    def _start(self, channel: Any, q: Queue, generation: int) -> None:
        consumer = Consumer(
            channel,
            queues=[q],
            on_message=functools.partial(self._on_message, q.name, generation),
            prefetch_count=self.prefetch,
            auto_declare=False,
        )
        consumer.consume()
        self._consumers[q.name] = consumer

    def _beat(self, channel: Any, generation: int, *, force_restore: bool = False) -> None:
        assert self._leases is not None
        gained, surplus = self._leases.beat()
        if gained or force_restore:
            self.transport.before_claim(channel)
        by_name = {q.name: q for q in self.transport.queues()}
        for name in sorted(gained | (self._leases.held - set(self._consumers))):
            if name not in self._consumers:
                self._start(channel, by_name[name], generation)
        if surplus:
            for name in surplus:
                consumer = self._consumers.pop(name, None)
                if consumer is not None:
                    consumer.cancel()
            # Hand a partition over only once nothing of it is in flight here.
            self._wait_idle(generation, timeout=settings.INTAKE_LEASE_SECONDS / 3)
            if self.lanes.idle():
                self._leases.release(surplus)
                log.info("intake_partitions_released", queues=sorted(surplus))
        if gained:
            log.info("intake_partitions_claimed", queues=sorted(gained))

    def _on_message(self, queue_name: str, generation: int, message: Message) -> None:
        deliveries = self.transport.deliveries(message)
        item = services.incoming(
            message.body or b"",
            source=self.transport.source,
            queue=queue_name,
            deliveries=deliveries,
        )
        if deliveries > 1:
            metrics.EVENTS.labels(source=item.source, outcome="redelivered").inc()
        self.lanes.put(Delivery(message=message, item=item, generation=generation))

    def _flush_acks(self, generation: int) -> None:
        ready: list[Message] = []
        while True:
            try:
                delivery = self.acks.get_nowait()
            except queue.Empty:
                break
            # A delivery of a channel that is gone: the broker delivers it again, a duplicate.
            if delivery.generation == generation:
                ready.append(delivery.message)
        if not ready:
            return
        try:
            self.transport.ack_many(ready)
        except Exception as exc:  # the channel died under us; the broker redelivers
            log.warning("intake_ack_failed", messages=len(ready), error=str(exc))

    def _sample_lag(self, channel: Any) -> None:
        queues = [
            q
            for q in self.transport.queues()
            if self._leases is None or q.name in self._leases.held
        ]
        try:
            depths = self.transport.lag(channel, queues)
        except Exception as exc:
            log.warning("intake_lag_unavailable", error=str(exc))
            return
        for name, depth in depths.items():
            metrics.LAG.labels(source=self.transport.source, queue=name).set(depth)

    def _wait_idle(self, generation: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.lanes.idle() and time.monotonic() < deadline:
            time.sleep(0.01)
            self._flush_acks(generation)
        self._flush_acks(generation)

    def _drain(self, conn: Connection, generation: int) -> None:
        """A clean stop: no new messages; apply and ack those received; give the partitions back."""
        for consumer in self._consumers.values():
            with contextlib.suppress(Exception):
                consumer.cancel()
        self._consumers.clear()
        self._wait_idle(generation, timeout=settings.INTAKE_SHUTDOWN_SECONDS)
        if self._leases is not None:
            with contextlib.suppress(Exception):
                self._leases.leave()
        log.info("intake_stopped", owner=self.owner, idle=self.lanes.idle())

    def _finish(self) -> None:
        self.stopping.set()
        for thread in self._threads:
            thread.join(timeout=settings.INTAKE_SHUTDOWN_SECONDS)
        connection.close()  # the leases' connection, on this thread

    # --- workers ----------------------------------------------------------------

    def _work(self) -> None:
        try:
            while not (self.stopping.is_set() and self.lanes.idle()):
                batch = self.lanes.take(self.batch_size, timeout=0.1, linger=self.linger)
                if not batch:
                    continue
                try:
                    self._apply(batch)
                finally:
                    self.lanes.done(batch)
        finally:
            connection.close()

    def _apply(self, batch: list[Delivery]) -> None:
        started = time.monotonic()
        shared = len({delivery.lane for delivery in batch}) > 1
        try:
            services.batch_apply([delivery.item for delivery in batch], shared=shared)
        except services.Contended:
            # One conversation waits for a lock: each goes on alone, so that it
            # holds up none of the others.
            _reset_connection()
            log.info("intake_batch_contended", size=len(batch))
            self.lanes.put_back(batch)
            return
        except Exception as exc:
            _reset_connection()
            if len(batch) > 1:
                # Isolate the failing event: the others must not share its fate.
                log.warning("intake_batch_failed", size=len(batch), error=str(exc))
                for delivery in batch:
                    self._apply_alone(delivery)
                return
            self._apply_alone(batch[0], first_error=exc)
            return
        metrics.BATCH_SIZE.observe(len(batch))
        metrics.BATCH_SECONDS.observe(time.monotonic() - started)
        self.lanes.applied(batch)
        self._settled(batch)

    def _apply_alone(self, delivery: Delivery, first_error: Exception | None = None) -> None:
        """Retry one event with a backoff until it applies, or is given up and stored."""
        error = first_error
        while True:
            if error is None:
                try:
                    services.batch_apply([delivery.item])
                except Exception as exc:
                    _reset_connection()
                    error = exc
                else:
                    self._settled([delivery])
                    return
            delivery.attempts += 1
            deliveries = delivery.item.deliveries + delivery.attempts - 1
            metrics.EVENTS.labels(source=delivery.item.source, outcome="redelivered").inc()
            log.warning(
                "intake_apply_failed",
                event_id=delivery.item.event_id,
                deliveries=deliveries,
                error=f"{type(error).__name__}: {error}",
            )
            if deliveries >= self.max_deliveries and self._give_up(delivery, error, deliveries):
                return
            if self.stopping.is_set():
                return  # left unacknowledged: the broker delivers it again
            pause = _BACKOFF_SECONDS[min(delivery.attempts - 1, len(_BACKOFF_SECONDS) - 1)]
            self.stopping.wait(pause)
            error = None

    def _give_up(self, delivery: Delivery, error: Exception, deliveries: int) -> bool:
        item = delivery.item
        try:
            services.dead_letter_store(
                body=item.body,
                source=item.source,
                queue=item.queue,
                code="gave_up",
                reason=f"Failed {deliveries} times; last error: {type(error).__name__}: {error}",
                event_id=item.event_id,
                deliveries=deliveries,
            )
        except Exception as exc:
            _reset_connection()
            log.warning("intake_give_up_failed", event_id=item.event_id, error=str(exc))
            return False
        item.outcome = Outcome.DEAD_LETTERED
        self._settled([delivery])
        return True

    def _settled(self, batch: list[Delivery]) -> None:
        for delivery in batch:
            item = delivery.item
            outcome = item.outcome or Outcome.APPLIED
            metrics.EVENTS.labels(source=item.source, outcome=outcome.value).inc()
            if outcome is Outcome.DUPLICATE:
                log.info("intake_duplicate", event_id=item.event_id, queue=item.queue)
            elif outcome is Outcome.APPLIED:
                log.debug("intake_applied", event_id=item.event_id, queue=item.queue)
            self.acks.put(delivery)


def _reset_connection() -> None:
    """After a failure, drop this thread's database connection; the next query reconnects."""
    with contextlib.suppress(Exception):
        connection.close()
    close_old_connections()
