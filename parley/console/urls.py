"""The console's URLs, served by the live process only (config/urls_live.py; SPEC C-1, L-1)."""

from __future__ import annotations

from django.urls import path

from parley.console import stream, views

app_name = "console"

urlpatterns = [
    path("", views.conversation_list, name="conversations"),
    path("conversations/<uuid:conversation_id>/", views.conversation_detail, name="conversation"),
    path("p/<slug:name>/", views.panel_page, name="panel"),
    path("events/", stream.events, name="events"),
    path("session/", views.session, name="session"),
    path("actions/<slug:name>/<str:target>/", views.action, name="action"),
    path("login/", views.login, name="login"),
    path("logout/", views.logout, name="logout"),
]
