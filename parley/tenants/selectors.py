"""Tenant reads."""

from __future__ import annotations

from uuid import UUID

from parley.tenants.models import Tenant


def tenant_get(*, tenant_id: UUID) -> Tenant | None:
    return Tenant.objects.filter(pk=tenant_id).first()
