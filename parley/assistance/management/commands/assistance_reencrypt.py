"""Re-encrypt every channel config with the first of ASSISTANCE_CONFIG_KEYS (a key rotation)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from parley.assistance.crypto import EncryptedConfigField
from parley.assistance.models import Channel


class Command(BaseCommand):
    help = (
        "Re-encrypt every channel's config with the first ASSISTANCE_CONFIG_KEYS key. Put the "
        "new key first, keep the old ones after it, run this, then drop the old ones."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        unreadable = []
        done = 0
        for channel in Channel.objects.all():
            if channel.config.get(EncryptedConfigField.UNREADABLE):
                unreadable.append(channel.name)
                continue
            channel.save(update_fields=["config"])
            done += 1
        self.stdout.write(f"{done} channel configs re-encrypted.")
        if unreadable:
            raise CommandError(f"No configured key reads the config of: {', '.join(unreadable)}.")
