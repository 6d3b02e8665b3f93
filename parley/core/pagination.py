"""Page-number pagination shaped ``{count, next, results}`` (Q-7, Q-9)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer


class Pages(PageNumberPagination):
    """``?page=N`` (from 1) and ``?page_size=`` (at most 200); ``next`` is the next page's URL."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def get_paginated_response(self, data: Any) -> Response:
        assert self.page is not None
        return Response(
            {"count": self.page.paginator.count, "next": self.get_next_link(), "results": data}
        )

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "required": ["count", "next", "results"],
            "properties": {
                "count": {"type": "integer", "example": 123},
                "next": {"type": "string", "nullable": True, "format": "uri"},
                "results": schema,
            },
        }


def paginated(
    request: Request, queryset: QuerySet[Any], serializer: type[BaseSerializer[Any]], view: Any
) -> Response:
    """The page the request asks for, serialized, as ``{count, next, results}``."""
    pages = Pages()
    page = pages.paginate_queryset(queryset, request, view=view)
    assert page is not None
    return pages.get_paginated_response(serializer(page, many=True).data)
