"""The Pix API of seed 004 (SPEC section 8), served by the live process.

``GET /api/pix/{ispb}/stream/start``, ``GET|DELETE /api/pix/{ispb}/stream/{interactionId}``
(the streaming core's views, keyed by the ISPB), ``POST /api/util/msgs/{ispb}/{number}``
(random test messages) and ``POST /api/pix/msgs`` (one given message).
"""

from __future__ import annotations

import re
from typing import Any

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.views import APIView

from parley.core.auth import ApiTokenAuthentication, ApiTokenPermission
from parley.core.openapi import problem_responses
from parley.streams.errors import InvalidNumber
from parley.streams.openapi import INTERACTION_ID, stream_delete_schema, stream_get_schema
from parley.streams.pix import services
from parley.streams.pix.kind import PIX, check_ispb, message_payload
from parley.streams.pix.serializers import CreatedOutput, ExactJSONParser, PixMessageSerializer
from parley.streams.views import StreamStartView, StreamView

TAG = "pix"
GENERATE_MAX = 1000
_NUMBER = re.compile(r"[0-9]{1,7}", re.ASCII)

ISPB = OpenApiParameter(
    "ispb",
    OpenApiTypes.STR,
    OpenApiParameter.PATH,
    pattern="^[0-9]{8}$",
    description="The receiver's ISPB (recebedor.ispb): exactly 8 digits, else 400 invalid_ispb.",
)
INVALID_ISPB = {"s400": "invalid_ispb: the ISPB is not exactly 8 digits (checked first)."}
EXAMPLE = {
    "endToEndId": "E320749862024022119277T3lEBbUM0z",
    "valor": 90.20,
    "pagador": {
        "nome": "Marcos José",
        "cpfCnpj": "98716278190",
        "ispb": "32074986",
        "agencia": "0001",
        "contaTransacional": "1231231",
        "tipoConta": "CACC",
    },
    "recebedor": {
        "nome": "Flavio José",
        "cpfCnpj": "77615678291",
        "ispb": "00000000",
        "agencia": "0361",
        "contaTransacional": "1210098",
        "tipoConta": "SVGS",
    },
    "campoLivre": "",
    "txId": "h7a786d8a7s6gd1hgs",
    "dataHoraPagamento": "2022-07-23T19:47:18.108Z",
}


class _PixKeyed:
    kind = PIX

    def stream_key(self, request: Request, **kwargs: Any) -> str:
        return check_ispb(kwargs["ispb"])


class PixStreamStartApi(_PixKeyed, StreamStartView):
    @stream_get_schema(
        item=PixMessageSerializer,
        key_parameters=[ISPB],
        pull_next_example="/api/pix/32074986/stream/5oj7tm0jow61",
        opens=True,
        errors=INVALID_ISPB,
        operation_id="pix_stream_start",
        summary="Open a stream and get its first messages",
        description="Opens a stream of the messages addressed to `ispb` and long-polls for its "
        "first answer: 200 as soon as one message is available, else 204 when "
        "PIX_POLL_SECONDS (at most 8) have passed since the request arrived. At most "
        "PIX_MAX_STREAMS_PER_ISPB (6) streams per ISPB are open at once. A message is "
        "handed to one stream, once.",
        tags=[TAG],
    )
    async def get(self, request: Request, **kwargs: Any) -> Any:
        return await super().get(request, **kwargs)


class PixStreamApi(_PixKeyed, StreamView):
    @stream_get_schema(
        item=PixMessageSerializer,
        key_parameters=[ISPB, INTERACTION_ID],
        pull_next_example="/api/pix/32074986/stream/9kp6a6l7c2ii",
        opens=False,
        errors=INVALID_ISPB,
        operation_id="pix_stream_next",
        summary="Get the next messages of a stream",
        description="Exactly like `start` (the same long poll, answers and headers), on the "
        "stream that issued this id. Asking with an id acknowledges the messages that came "
        "with it. A stream with no request for PIX_STREAM_IDLE_SECONDS (60) expires.",
        tags=[TAG],
    )
    async def get(self, request: Request, interaction_id: str, **kwargs: Any) -> Any:
        return await super().get(request, interaction_id, **kwargs)

    @stream_delete_schema(
        key_parameters=[ISPB, INTERACTION_ID],
        errors=INVALID_ISPB,
        operation_id="pix_stream_delete",
        summary="End a stream",
        description="Acknowledges every message the stream handed out and frees its slot.",
        tags=[TAG],
    )
    async def delete(self, request: Request, interaction_id: str, **kwargs: Any) -> Any:
        return await super().delete(request, interaction_id, **kwargs)


class PixMessageCreateApi(APIView):
    authentication_classes = [ApiTokenAuthentication]
    permission_classes = [ApiTokenPermission]
    parser_classes = [ExactJSONParser]

    @extend_schema(
        operation_id="pix_message_create",
        summary="Store one Pix message",
        request=PixMessageSerializer,
        responses={
            (201, "application/json"): OpenApiResponse(
                PixMessageSerializer, description="The message as stored."
            ),
            **problem_responses(
                s400="invalid_payload: not JSON, or a field is missing, malformed or unknown "
                "(errors per field).",
                s401="not_authenticated: API_TOKEN is set and the bearer token is missing "
                "or wrong.",
                s409="duplicate_end_to_end_id: a message with this endToEndId is stored.",
                s413="payload_too_large: the body is over WEBHOOK_MAX_BODY_BYTES.",
                s415="unsupported_media_type: the body must be JSON.",
            ),
        },
        examples=[OpenApiExample("Seed 004's message", value=EXAMPLE, request_only=True)],
        tags=[TAG],
    )
    def post(self, request: Request) -> HttpResponse:
        serializer = PixMessageSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        message = services.message_create(data=serializer.validated_data)
        return HttpResponse(
            PIX.encode(message_payload(message)), status=201, content_type="application/json"
        )


class UtilMessagesApi(APIView):
    authentication_classes = [ApiTokenAuthentication]
    permission_classes = [ApiTokenPermission]

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        check_ispb(kwargs["ispb"])  # before anything else
        super().initial(request, *args, **kwargs)

    @extend_schema(
        operation_id="pix_util_generate",
        summary="Store random test messages for an ISPB",
        parameters=[
            ISPB,
            OpenApiParameter(
                "number",
                OpenApiTypes.INT,
                OpenApiParameter.PATH,
                description=f"How many messages: 1 to {GENERATE_MAX}.",
            ),
        ],
        request=None,
        responses={
            201: OpenApiResponse(CreatedOutput, description='`{"created": number}`.'),
            **problem_responses(
                s400=f"invalid_ispb (checked first), or invalid_number: not 1 to {GENERATE_MAX}.",
                s401="not_authenticated: API_TOKEN is set and the bearer token is missing "
                "or wrong.",
            ),
        },
        tags=[TAG],
    )
    def post(self, request: Request, ispb: str, number: str) -> HttpResponse:
        count = int(number) if _NUMBER.fullmatch(number) else 0
        if not 1 <= count <= GENERATE_MAX:
            raise InvalidNumber(f"number must be a whole number from 1 to {GENERATE_MAX}.")
        created = services.messages_generate(ispb=ispb, count=count)
        return HttpResponse(
            PIX.encode({"created": created}), status=201, content_type="application/json"
        )
