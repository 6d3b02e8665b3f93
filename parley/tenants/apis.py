"""``GET`` and ``PUT /tenants/{id}/`` (Q-1), behind the API token."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from parley.core.auth import ApiTokenAuthentication, ApiTokenPermission
from parley.core.errors import InvalidPayload
from parley.core.openapi import problem_responses
from parley.tenants import selectors, services
from parley.tenants.models import Tenant

_UNAUTHENTICATED = "not_authenticated: API_TOKEN is set and the bearer token is missing or wrong."


class TenantOutput(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    time_zone = serializers.CharField(help_text="IANA time zone name.")
    idle_close_after = serializers.IntegerField(
        allow_null=True, help_text="Seconds without a message before a conversation closes (T-1)."
    )
    daily_close_at = serializers.TimeField(
        format="%H:%M",
        allow_null=True,
        help_text="Local time HH:MM at which every OPEN conversation closes (T-1).",
    )
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class TenantInput(serializers.Serializer):
    """Documentation only: the body is checked by ``parley.tenants.validation``."""

    name = serializers.CharField(required=False, allow_blank=True, max_length=200)
    time_zone = serializers.CharField(required=False, help_text="IANA name, e.g. Europe/Lisbon.")
    idle_close_after = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=2**31 - 1
    )
    daily_close_at = serializers.RegexField(
        r"^([01][0-9]|2[0-3]):[0-5][0-9]$", required=False, allow_null=True
    )


def _parse_id(tenant_id: str) -> UUID:
    try:
        return UUID(tenant_id)
    except ValueError as exc:
        raise NotFound(f"No tenant {tenant_id!r}.") from exc


def _body(tenant: Tenant) -> dict[str, Any]:
    return dict(TenantOutput(tenant).data)


class TenantDetailApi(APIView):
    authentication_classes = [ApiTokenAuthentication]
    permission_classes = [ApiTokenPermission]

    @extend_schema(
        operation_id="tenant_retrieve",
        summary="Read a tenant",
        responses={
            200: OpenApiResponse(TenantOutput, description="The tenant."),
            **problem_responses(
                s401=_UNAUTHENTICATED,
                s404="not_found: no tenant has this id, or the id is not a UUID.",
            ),
        },
        tags=["tenants"],
    )
    def get(self, request: Request, tenant_id: str) -> Response:
        tenant = selectors.tenant_get(tenant_id=_parse_id(tenant_id))
        if tenant is None:
            raise NotFound(f"No tenant {tenant_id}.")
        return Response(_body(tenant))

    @extend_schema(
        operation_id="tenant_put",
        summary="Create a tenant, or set some of its fields",
        description="The fields given are set; the others keep their value (or the defaults "
        "for a new tenant). 201 when the tenant did not exist.",
        request=TenantInput,
        responses={
            200: OpenApiResponse(TenantOutput, description="Updated."),
            201: OpenApiResponse(TenantOutput, description="Created."),
            **problem_responses(
                s400="invalid_time_zone: not an IANA zone this server knows; invalid_payload: "
                "another field is invalid (idle_close_after below 1, daily_close_at not HH:MM).",
                s401=_UNAUTHENTICATED,
                s404="not_found: the id is not a UUID.",
            ),
        },
        examples=[
            OpenApiExample(
                "A tenant in Sao Paulo that closes idle conversations after an hour",
                request_only=True,
                value={
                    "name": "Acme",
                    "time_zone": "America/Sao_Paulo",
                    "idle_close_after": 3600,
                    "daily_close_at": "23:30",
                },
            )
        ],
        tags=["tenants"],
    )
    def put(self, request: Request, tenant_id: str) -> Response:
        parsed = _parse_id(tenant_id)
        if not isinstance(request.data, dict):
            raise InvalidPayload(
                "The body must be a JSON object.",
                errors={"non_field_errors": ["Expected a JSON object."]},
            )
        tenant, created = services.tenant_put(tenant_id=parsed, fields=request.data)
        return Response(
            _body(tenant), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )
