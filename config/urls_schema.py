"""The URLs the OpenAPI schema documents: the web process's and the live process's.

No process routes this module. The schema is served by the web process at
``/api/schema/`` (and written by ``manage.py spectacular``), and it must
cover the endpoints of the live process as well, which the web process never
routes (SPEC L-1, O-4): ``config.schema.SchemaGenerator`` reads both URL
sets from here.
"""

from __future__ import annotations

from config import urls, urls_live

urlpatterns = [*urls.urlpatterns, *urls_live.urlpatterns]
