"""Tenant writes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from parley.core import sql
from parley.tenants.models import Tenant
from parley.tenants.validation import clean_tenant_fields

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
    _insert_with_defaults(tenant_id)
    return tenant_id


def _insert_with_defaults(tenant_id: UUID) -> bool:
    """Insert the tenant with the defaults unless it exists; whether it was inserted."""
    now = timezone.now()
    field = lambda name: sql.field(Tenant, name)  # noqa: E731
    inserted = sql.execute(
        _ENSURE,
        [
            (field("id"), tenant_id),
            (field("time_zone"), settings.DEFAULT_TENANT_TIME_ZONE),
            (field("created_at"), now),
            (field("updated_at"), now),
        ],
    )
    return inserted > 0


def tenant_put(*, tenant_id: UUID, fields: Mapping[str, Any]) -> tuple[Tenant, bool]:
    """``PUT /tenants/{id}/``: set the fields given, creating the tenant if unknown (Q-1).

    Returns the tenant and whether it was created. Fields not given keep
    their value (or the defaults, for a new tenant). Every value goes through
    :mod:`parley.tenants.validation` first, so nothing is written when one is bad.
    """
    cleaned = clean_tenant_fields(fields)
    with transaction.atomic():
        created = _insert_with_defaults(tenant_id)
        tenant = Tenant.objects.select_for_update().get(pk=tenant_id)
        for name, value in cleaned.items():
            setattr(tenant, name, value)
        tenant.updated_at = timezone.now()
        tenant.save()
    return tenant, created
