from __future__ import annotations

from django.urls import path

from parley.webhooks.apis import WebhookApi

urlpatterns = [
    path("webhook/", WebhookApi.as_view(), name="webhook"),
]
