"""The live process (SPEC section 7): the same project under ASGI, for requests that wait.

``make live`` (or ``python -m config.live``) serves it with uvicorn on
``LIVE_PORT``. It answers only the URLs of ``config.urls_live`` (the long
polls, event streams and pages that use them, plus the probes); the web
process (gunicorn) answers everything else and never sees a waiting request.
"""

from __future__ import annotations

import os

# Before anything reads the settings: they differ for this process.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ["PARLEY_PROCESS"] = "live"

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.asgi import get_asgi_application

# The static files of the pages served here (behind the compose proxy, /static/
# goes to the web process instead). Django's handler reads them off the apps
# asynchronously enough for a few vendored files; it needs no collectstatic.
application = ASGIStaticFilesHandler(get_asgi_application())
