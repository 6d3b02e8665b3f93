from __future__ import annotations

import uuid

import factory
from django.utils import timezone

from parley.conversations.models import Conversation


class ConversationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Conversation

    id = factory.LazyFunction(uuid.uuid4)
    status = Conversation.Status.OPEN
    created_at = factory.LazyFunction(timezone.now)
    updated_at = factory.LazyFunction(timezone.now)
