"""Optional bearer token for the read endpoints (S-1).

With ``API_TOKEN`` set, read endpoints need ``Authorization: Bearer <token>``
and answer 401 (with ``WWW-Authenticate: Bearer``) without it. With it unset
they are open.
"""

from __future__ import annotations

import hmac
from typing import Any

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import BasePermission
from rest_framework.request import Request


class ApiTokenAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[None, str] | None:
        token: str = settings.API_TOKEN
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if not token or scheme.lower() != "bearer":
            return None
        if not hmac.compare_digest(given.strip().encode(), token.encode()):
            raise AuthenticationFailed("The bearer token is not valid.")
        return (None, "api-token")

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="parley"'


class ApiTokenPermission(BasePermission):
    message = "A bearer token is required."

    def has_permission(self, request: Request, view: Any) -> bool:
        return not settings.API_TOKEN or request.auth is not None


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """Documents the bearer token in the OpenAPI schema."""

    target_class = ApiTokenAuthentication
    name = "apiToken"

    def get_security_requirement(self, auto_schema: Any) -> list[dict[str, list[str]]]:
        # Optional: without API_TOKEN on the server, reads need no token.
        return [{self.name: []}, {}]

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "Required only when the server sets API_TOKEN.",
        }
