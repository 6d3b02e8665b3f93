from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from parley.core import health

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", health.metrics_view, name="metrics"),
    path("", include("parley.webhooks.urls")),
    path("", include("parley.conversations.urls")),
    path("", include("parley.tenants.urls")),
    path("", include("parley.intake.urls")),
    path("", include("parley.assistance.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("swagger/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger"),
    path("admin/", admin.site.urls),
]

handler404 = "parley.core.errors.handler404"
handler500 = "parley.core.errors.handler500"
