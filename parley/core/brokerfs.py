"""The embedded broker (kombu's filesystem transport) with atomic writes.

kombu creates a message's file, then writes it. A worker that lists the
folder in between moves the empty file away, fails to decode it, and its
consumer stops ("Unrecoverable error"): the worker exits. The more often
messages are published (the scheduler's ticks, the tasks published after a
commit), the likelier. Here a message is written under a name the readers
ignore and renamed into place when complete; a rename within one folder is
atomic, so a reader sees a whole message or none.

``config/celery.py`` puts this transport behind ``filesystem://``.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = f"{final}.partial"  # not "<queue>.msg": readers skip it
        try:
            with open(partial, "wb") as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {name!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel
