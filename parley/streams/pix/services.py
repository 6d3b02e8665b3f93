"""Storing Pix messages: one given message, or random ones for tests (SPEC section 8).

Each write rings ``parley_pix`` with the receiver's ISPB in its own
transaction (``parley_ring``: a NOTIFY at commit, only while a live process
listens), so the collectors waiting for that ISPB look at once (L-3).
"""

from __future__ import annotations

import random
import secrets
import string
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from parley.live.services import ring
from parley.streams.errors import DuplicateEndToEndId
from parley.streams.pix.kind import CHANNEL
from parley.streams.pix.models import PixMessage
from parley.streams.pix.serializers import ACCOUNT_TYPES

_ALPHANUMERIC = string.ascii_letters + string.digits
_FIRST_NAMES = [
    "Ana", "Bruno", "Camila", "Diego", "Eduarda", "Felipe", "Gabriela", "Heitor", "Isabela",
    "João", "Larissa", "Marcos", "Natália", "Otávio", "Paula", "Rafael", "Sofia", "Thiago",
    "Valentina", "Flávio",
]  # fmt: skip
_LAST_NAMES = [
    "Almeida", "Barbosa", "Carvalho", "Costa", "Ferreira", "Gomes", "Lima", "Martins",
    "Oliveira", "Pereira", "Ribeiro", "Rocha", "Santos", "Silva", "Souza", "José",
]  # fmt: skip


def message_create(*, data: dict[str, Any]) -> PixMessage:
    """Store one message (the validated body of ``POST /api/pix/msgs``).

    409 ``duplicate_end_to_end_id`` when its endToEndId is taken.
    """
    message = PixMessage(**_columns(data))
    try:
        with transaction.atomic():
            message.save(force_insert=True)
            ring(CHANNEL, message.recebedor_ispb)
    except IntegrityError as exc:
        if PixMessage.objects.filter(end_to_end_id=message.end_to_end_id).exists():
            raise DuplicateEndToEndId(
                f"A message with endToEndId {message.end_to_end_id} is already stored."
            ) from exc
        raise
    return message


def messages_generate(*, ispb: str, count: int, now: datetime | None = None) -> int:
    """Store ``count`` random messages whose ``recebedor.ispb`` is ``ispb``; returns ``count``."""
    at = now or timezone.now()
    # Test data, not secrets: a fast generator, seeded from the OS.
    rng = random.Random(secrets.randbits(64))  # noqa: S311
    messages = [PixMessage(**_columns(_random_message(rng, ispb, at))) for _ in range(count)]
    with transaction.atomic():
        PixMessage.objects.bulk_create(messages, batch_size=500)
        ring(CHANNEL, ispb)
    return count


def _columns(data: dict[str, Any]) -> dict[str, Any]:
    pagador, recebedor = data["pagador"], data["recebedor"]
    return {
        "end_to_end_id": data["endToEndId"],
        "valor": data["valor"],
        **{f"pagador_{column}": pagador[key] for key, column in _PARTY.items()},
        **{f"recebedor_{column}": recebedor[key] for key, column in _PARTY.items()},
        "campo_livre": data.get("campoLivre", ""),
        "tx_id": data["txId"],
        "data_hora_pagamento": data["dataHoraPagamento"],
    }


_PARTY = {
    "nome": "nome",
    "cpfCnpj": "cpf_cnpj",
    "ispb": "ispb",
    "agencia": "agencia",
    "contaTransacional": "conta_transacional",
    "tipoConta": "tipo_conta",
}


def _random_message(rng: random.Random, ispb: str, at: datetime) -> dict[str, Any]:
    payer_ispb = f"{rng.randrange(10**8):08d}"
    paid_at = at.astimezone(UTC).replace(microsecond=(at.microsecond // 1000) * 1000)
    return {
        # E + payer's ISPB + yyyyMMddHHmm + 11 alphanumerics: 32 characters, unique in practice
        # (62^11 per payer and minute); a collision fails the whole batch, never half of it.
        "endToEndId": "E"
        + payer_ispb
        + paid_at.strftime("%Y%m%d%H%M")
        + "".join(rng.choices(_ALPHANUMERIC, k=11)),
        "valor": Decimal(rng.randrange(1, 1_000_000)) / 100,
        "pagador": _random_party(rng, payer_ispb),
        "recebedor": _random_party(rng, ispb),
        "campoLivre": rng.choice(["", "", "Aluguel", "Pagamento de serviço", "Presente"]),
        "txId": "".join(rng.choices(_ALPHANUMERIC, k=rng.randint(18, 35))),
        "dataHoraPagamento": paid_at,
    }


def _random_party(rng: random.Random, ispb: str) -> dict[str, str]:
    return {
        "nome": f"{rng.choice(_FIRST_NAMES)} {rng.choice(_LAST_NAMES)}",
        "cpfCnpj": _cpf(rng),
        "ispb": ispb,
        "agencia": f"{rng.randrange(1, 10_000):04d}",
        "contaTransacional": str(rng.randrange(10**5, 10**9)),
        "tipoConta": rng.choice(ACCOUNT_TYPES),
    }


def _cpf(rng: random.Random) -> str:
    """A CPF with valid check digits."""
    digits = [rng.randrange(10) for _ in range(9)]
    for length in (9, 10):
        total = sum(d * w for d, w in zip(digits, range(length + 1, 1, -1), strict=True))
        digits.append((total * 10 % 11) % 10)
    return "".join(map(str, digits))
