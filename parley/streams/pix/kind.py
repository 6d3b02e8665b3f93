"""The ``pix`` kind of stream: Pix messages, keyed by the receiver's ISPB (SPEC section 8)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from parley.streams import kinds
from parley.streams.errors import InvalidIspb
from parley.streams.pix.models import PixMessage

# exactly 8 ASCII digits (not Unicode digits, which \d would take).
ISPB_PATTERN = re.compile(r"[0-9]{8}", re.ASCII)
CHANNEL = "parley_pix"
CENTS = Decimal("0.01")


def check_ispb(ispb: str) -> str:
    """X-2, checked before anything else: 400 ``invalid_ispb``."""
    if not ISPB_PATTERN.fullmatch(ispb):
        raise InvalidIspb(f"The ISPB must be exactly 8 digits, not {ispb[:40]!r}.")
    return ispb


def iso_millis(moment: datetime) -> str:
    """X-1: ISO 8601 in UTC with milliseconds and ``Z``, e.g. 2022-07-23T19:47:18.108Z."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def message_payload(message: PixMessage) -> dict[str, Any]:
    """A message with exactly the keys of X-1, in the seed's order."""
    return {
        "endToEndId": message.end_to_end_id,
        # A Decimal with two places: the encoder writes it as a JSON number (90.20).
        "valor": Decimal(message.valor).quantize(CENTS),
        "pagador": {
            "nome": message.pagador_nome,
            "cpfCnpj": message.pagador_cpf_cnpj,
            "ispb": message.pagador_ispb,
            "agencia": message.pagador_agencia,
            "contaTransacional": message.pagador_conta_transacional,
            "tipoConta": message.pagador_tipo_conta,
        },
        "recebedor": {
            "nome": message.recebedor_nome,
            "cpfCnpj": message.recebedor_cpf_cnpj,
            "ispb": message.recebedor_ispb,
            "agencia": message.recebedor_agencia,
            "contaTransacional": message.recebedor_conta_transacional,
            "tipoConta": message.recebedor_tipo_conta,
        },
        "campoLivre": message.campo_livre,
        "txId": message.tx_id,
        "dataHoraPagamento": iso_millis(message.data_hora_pagamento),
    }


class PixKind(kinds.StreamKind):
    name = "pix"
    channel = CHANNEL
    item_model = PixMessage
    poll_seconds_setting = "PIX_POLL_SECONDS"
    max_streams_setting = "PIX_MAX_STREAMS_PER_ISPB"
    idle_seconds_setting = "PIX_STREAM_IDLE_SECONDS"
    key_column = "recebedor_ispb"
    key_label = "ISPB"

    def render(self, ids: Sequence[int]) -> list[Any]:
        by_id = {m.id: m for m in PixMessage.objects.filter(id__in=ids)}
        return [message_payload(by_id[i]) for i in ids if i in by_id]

    def pull_next(self, key: str, interaction_id: str) -> str:
        return f"/api/pix/{key}/stream/{interaction_id}"


PIX = kinds.register(PixKind())
