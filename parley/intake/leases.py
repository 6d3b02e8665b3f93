"""Partition leases for brokers without a single-consumer queue (Redis, filesystem).

Each consumer beats a heartbeat row; the live consumers of a source share its
partitions evenly (``ceil(partitions / live)`` each). A lease is claimed by a
conditional UPDATE (free, or expired), renewed every third of its length and
released on a clean stop; a consumer that dies stops renewing, and its
partitions are claimed by the others once its leases run out. A consumer
reads only the partitions it holds, so a partition has one reader at a time
and its events are applied in order (Q-5).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from parley.intake.models import IntakeConsumer, PartitionLease


@dataclass
class LeaseKeeper:
    owner: str
    source: str
    queues: list[str]  # every partition queue of the source, in order
    seconds: float
    held: set[str] = field(default_factory=set)

    def lease_name(self, queue: str) -> str:
        return f"{self.source}:{queue}"

    def beat(self) -> tuple[set[str], set[str]]:
        """Renew, rebalance and claim; return (queues gained, queues to give up)."""
        now = timezone.now()
        ttl = timedelta(seconds=self.seconds)
        with transaction.atomic():
            IntakeConsumer.objects.update_or_create(
                owner=self.owner, defaults={"source": self.source, "seen_at": now}
            )
            live = IntakeConsumer.objects.filter(source=self.source, seen_at__gte=now - ttl).count()
            names = {self.lease_name(q): q for q in self.queues}
            renewed = set(
                PartitionLease.objects.filter(
                    name__in=[self.lease_name(q) for q in self.held], owner=self.owner
                ).values_list("name", flat=True)
            )
            PartitionLease.objects.filter(name__in=renewed).update(expires_at=now + ttl)
            lost = {q for q in self.held if self.lease_name(q) not in renewed}
            self.held -= lost
            share = math.ceil(len(self.queues) / max(live, 1))
            surplus = sorted(self.held)[share:] if len(self.held) > share else []
            gained: set[str] = set()
            if len(self.held) < share:
                PartitionLease.objects.bulk_create(
                    [PartitionLease(name=name, expires_at=now) for name in names],
                    ignore_conflicts=True,
                )
                free = PartitionLease.objects.filter(name__in=list(names)).filter(
                    Q(owner__isnull=True) | Q(expires_at__lt=now)
                )
                for name in free.order_by("name").values_list("name", flat=True):
                    if len(self.held) >= share:
                        break
                    claimed = (
                        PartitionLease.objects.filter(name=name)
                        .filter(Q(owner__isnull=True) | Q(expires_at__lt=now))
                        .update(owner=self.owner, expires_at=now + ttl)
                    )
                    if claimed:
                        self.held.add(names[name])
                        gained.add(names[name])
        return gained, set(surplus) | lost

    def release(self, queues: set[str]) -> None:
        PartitionLease.objects.filter(
            name__in=[self.lease_name(q) for q in queues], owner=self.owner
        ).update(owner=None, expires_at=timezone.now())
        self.held -= queues

    def leave(self) -> None:
        """A clean stop: free every partition at once, and drop the heartbeat."""
        self.release(set(self.held))
        IntakeConsumer.objects.filter(owner=self.owner).delete()
