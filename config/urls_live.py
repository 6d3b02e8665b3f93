"""URLs of the live process (config/asgi.py): requests that wait, and the probes.

Each capability that waits adds its URLs here and nowhere else, so that a
waiting request can never land on a gunicorn sync worker (SPEC L-1).
"""

from __future__ import annotations

from django.urls import include, path

from parley.core import health

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("", include("parley.streams.urls")),
    path("console/", include("parley.console.urls")),
]

handler404 = "parley.core.errors.handler404"
handler500 = "parley.core.errors.handler500"
