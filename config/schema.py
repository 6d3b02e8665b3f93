"""drf-spectacular's schema generator, reading ``config.urls_schema`` unless told otherwise.

Set as ``DEFAULT_GENERATOR_CLASS``, it serves both ``/api/schema/`` and
``manage.py spectacular``. The URL module is named, not imported, here:
importing it would import ``config.urls``, which imports drf-spectacular's
views, which read this setting.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.generators import SchemaGenerator as _SchemaGenerator

URLCONF = "config.urls_schema"


class SchemaGenerator(_SchemaGenerator):
    def __init__(self, *args: Any, urlconf: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, urlconf=urlconf or URLCONF, **kwargs)
