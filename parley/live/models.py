"""Who waits for a NOTIFY channel right now (SPEC L-3).

``pg_notify`` serialises the commits of every notifying transaction (a
database-wide lock held through the commit): on the reference machine it
halved PostgreSQL's insert rate (pgbench, 8 clients: 9,400 to 4,400
transactions per second). So writers of frequent facts ring a channel only
while some live process has waiters on it: the process keeps
``listening_until`` a little in the future for as long as they wait, and
writes it before its first waiter's first check, so no wake-up is lost.
With no listener nothing rings, and the outbox or the table behind the
channel stays the truth.
"""

from __future__ import annotations

from django.db import models


class Listener(models.Model):
    channel = models.CharField(max_length=63, primary_key=True)
    listening_until = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.channel} until {self.listening_until}"
