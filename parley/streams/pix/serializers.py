"""The Pix message (SPEC X-1) as a request body, with every field checked.

The same serializer documents the message in answers; answers are rendered
by ``kind.message_payload`` (msgspec writes ``valor`` as a JSON number with
two decimals, where DRF would write a string).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

ACCOUNT_TYPES = ["CACC", "SVGS", "SLRY", "TRAN"]
VALOR_MAX = Decimal("999999999999999.99")  # DecimalField(max_digits=17, decimal_places=2)
END_TO_END_ID = re.compile(r"E([0-9]{8})([0-9]{12})[A-Za-z0-9]{11}", re.ASCII)


class ExactJSONParser(JSONParser):
    """JSON with exact decimals: ``90.20`` is Decimal('90.20'), never a float; NaN refused."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        def refuse(name: str) -> Any:
            raise ParseError(f"JSON parse error - {name} is not a number JSON allows.")

        try:
            return json.loads(stream.read(), parse_float=Decimal, parse_constant=refuse)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ParseError(f"JSON parse error - {exc}") from exc


@extend_schema_field(
    {
        "type": "number",
        "minimum": 0.01,
        "maximum": float(VALOR_MAX),
        "description": "A JSON number with at most two decimals, never a string (X-1).",
        "example": 90.20,
    }
)
class ValorField(serializers.Field):
    default_error_messages = {
        "number": "Must be a JSON number, such as 90.20.",
        "places": "At most two decimals.",
        "range": f"Must be above 0 and at most {VALOR_MAX}.",
    }

    def to_internal_value(self, data: Any) -> Decimal:
        if isinstance(data, bool) or not isinstance(data, int | Decimal | float):
            self.fail("number")
        try:
            value = Decimal(str(data)) if isinstance(data, float) else Decimal(data)
        except InvalidOperation:
            self.fail("number")
        if not value.is_finite():
            self.fail("number")
        if value != value.quantize(Decimal("0.01")):
            self.fail("places")
        if not Decimal(0) < value <= VALOR_MAX:
            self.fail("range")
        return value.quantize(Decimal("0.01"))

    def to_representation(self, value: Any) -> Any:
        return value


class _Strict(serializers.Serializer):
    """Refuses keys it does not declare: the shape is exact (X-1)."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({key: ["Unknown field."] for key in unknown})
        return super().to_internal_value(data)


class PartySerializer(_Strict):
    nome = serializers.CharField(min_length=1, max_length=140)
    cpfCnpj = serializers.RegexField(
        r"^(?:[0-9]{11}|[0-9]{14})$", help_text="CPF (11 digits) or CNPJ (14 digits)."
    )
    ispb = serializers.RegexField(r"^[0-9]{8}$", help_text="8 digits.")
    agencia = serializers.RegexField(r"^[0-9]{1,4}$", help_text="Branch: 1 to 4 digits.")
    contaTransacional = serializers.RegexField(
        r"^[0-9]{1,20}$", help_text="Account: 1 to 20 digits."
    )
    tipoConta = serializers.ChoiceField(
        choices=ACCOUNT_TYPES,
        help_text="CACC checking, SVGS savings, SLRY salary, TRAN payment account.",
    )


class PixMessageSerializer(_Strict):
    endToEndId = serializers.RegexField(
        rf"^{END_TO_END_ID.pattern}$",
        help_text="32 characters: E, the payer's ISPB, yyyyMMddHHmm (UTC), 11 alphanumerics. "
        "Unique.",
    )
    valor = ValorField()
    pagador = PartySerializer()
    recebedor = PartySerializer(help_text="Streams of recebedor.ispb hand the message out.")
    campoLivre = serializers.CharField(allow_blank=True, max_length=140, required=False, default="")
    txId = serializers.RegexField(r"^[A-Za-z0-9]{1,35}$", help_text="1 to 35 alphanumerics.")
    dataHoraPagamento = serializers.DateTimeField(
        help_text="ISO 8601; answers give it in UTC with milliseconds and Z "
        "(2022-07-23T19:47:18.108Z). Without an offset it is UTC.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        match = END_TO_END_ID.fullmatch(attrs["endToEndId"])
        assert match is not None  # the field's pattern
        if match.group(1) != attrs["pagador"]["ispb"]:
            raise serializers.ValidationError(
                {"endToEndId": ["Characters 2 to 9 must be the payer's ISPB (pagador.ispb)."]}
            )
        try:
            datetime.strptime(match.group(2), "%Y%m%d%H%M").replace(tzinfo=UTC)
        except ValueError:
            raise serializers.ValidationError(
                {"endToEndId": ["Characters 10 to 21 must be a date and time, yyyyMMddHHmm."]}
            ) from None
        return attrs


class CreatedOutput(serializers.Serializer):
    created = serializers.IntegerField(min_value=1, max_value=1000)
