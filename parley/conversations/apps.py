from __future__ import annotations

from django.apps import AppConfig


class ConversationsConfig(AppConfig):
    name = "parley.conversations"
    label = "conversations"
    verbose_name = "Conversations"

    def ready(self) -> None:
        from parley.conversations import checks  # noqa: F401  (registers system checks)
        from parley.conversations.collectors import FailedGroupsCollector
        from parley.core import metrics

        metrics.SCRAPE_COLLECTORS.append(FailedGroupsCollector())
