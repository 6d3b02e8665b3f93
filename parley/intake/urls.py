from __future__ import annotations

from django.urls import path

from parley.intake.apis import DeadLetterListApi, DeadLetterRedriveApi

urlpatterns = [
    path("intake/dead-letters/", DeadLetterListApi.as_view(), name="dead-letter-list"),
    path(
        "intake/dead-letters/<str:dead_letter_id>/redrive",
        DeadLetterRedriveApi.as_view(),
        name="dead-letter-redrive",
    ),
]
