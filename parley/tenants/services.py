"""Tenant writes."""

from __future__ import annotations

from uuid import UUID

from django.conf import settings
from django.utils import timezone

from parley.core import sql
from parley.tenants.models import Tenant

_TABLE = Tenant._meta.db_table
_ENSURE = f"""
    INSERT INTO {_TABLE} (id, name, time_zone, created_at, updated_at)
    VALUES (%s, '', %s, %s, %s)
    ON CONFLICT (id) DO NOTHING
"""  # noqa: S608  (table name from the model)


def tenant_ensure(*, tenant_id: UUID | None) -> UUID:
    """The tenant's id, creating it with the defaults when unknown (Q-1); None: the default.

    One ``INSERT ... ON CONFLICT DO NOTHING``, in the caller's transaction:
    cheap enough for every new conversation, and never stale (a process-wide
    cache would be, once a tenant without conversations is deleted).
    """
    tenant_id = tenant_id or settings.DEFAULT_TENANT_ID
    now = timezone.now()
    field = lambda name: sql.field(Tenant, name)  # noqa: E731
    sql.execute(
        _ENSURE,
        [
            (field("id"), tenant_id),
            (field("time_zone"), settings.DEFAULT_TENANT_TIME_ZONE),
            (field("created_at"), now),
            (field("updated_at"), now),
        ],
    )
    return tenant_id
