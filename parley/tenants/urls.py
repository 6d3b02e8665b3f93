from __future__ import annotations

from django.urls import path

from parley.tenants.apis import TenantDetailApi

urlpatterns = [
    # A str converter: a malformed id reaches the view and gets a problem+json 404.
    path("tenants/<str:tenant_id>/", TenantDetailApi.as_view(), name="tenant-detail"),
]
