"""The Celery application. Settings live in Django settings under ``CELERY_``."""

from __future__ import annotations

import os

from celery import Celery
from kombu.transport import TRANSPORT_ALIASES

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# The embedded broker, with atomic writes (parley/core/brokerfs.py says why).
TRANSPORT_ALIASES["filesystem"] = "parley.core.brokerfs:Transport"

app = Celery("parley")
app.config_from_object("django.conf:settings", namespace="CELERY")


@app.on_after_configure.connect
def _mirror_visibility_timeout(sender: Celery, **kwargs: object) -> None:
    """Celery reads the visibility timeout from three places; they must agree (a
    shorter one anywhere wins), so the transport option is mirrored here too.

    Done once the configuration is read, not at import: importing ``config``
    must not load Django's settings, which differ per process (config/asgi.py).
    """
    sender.conf.visibility_timeout = sender.conf.broker_transport_options.get("visibility_timeout")


app.autodiscover_tasks()
