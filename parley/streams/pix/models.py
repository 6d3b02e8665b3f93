"""Pix messages (seed 004, SPEC X-1): the items of ``pix`` streams."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone

from parley.streams.items import StreamItem


class PixMessage(StreamItem):
    """One payment message, addressed to ``recebedor_ispb``, handed to one collector once."""

    # Also the order of collection: first stored, first handed out.
    id = models.BigAutoField(primary_key=True)
    end_to_end_id = models.CharField(max_length=32, unique=True)
    valor = models.DecimalField(max_digits=17, decimal_places=2)
    pagador_nome = models.CharField(max_length=140)
    pagador_cpf_cnpj = models.CharField(max_length=14)
    pagador_ispb = models.CharField(max_length=8)
    pagador_agencia = models.CharField(max_length=4)
    pagador_conta_transacional = models.CharField(max_length=20)
    pagador_tipo_conta = models.CharField(max_length=4)
    recebedor_nome = models.CharField(max_length=140)
    recebedor_cpf_cnpj = models.CharField(max_length=14)
    recebedor_ispb = models.CharField(max_length=8)
    recebedor_agencia = models.CharField(max_length=4)
    recebedor_conta_transacional = models.CharField(max_length=20)
    recebedor_tipo_conta = models.CharField(max_length=4)
    campo_livre = models.CharField(max_length=140, blank=True)
    tx_id = models.CharField(max_length=35)
    data_hora_pagamento = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "Pix message"
        constraints = [
            models.CheckConstraint(condition=Q(valor__gt=0), name="pix_valor_positive"),
        ]
        indexes = [
            # Serves the claim: WHERE recebedor_ispb = %s AND delivered_at IS NULL
            # ORDER BY id LIMIT n FOR UPDATE SKIP LOCKED.
            models.Index(
                fields=["recebedor_ispb", "id"],
                condition=Q(delivered_at__isnull=True),
                name="pix_pending_idx",
            ),
            # Serves the admin's listing of an ISPB's messages, newest first.
            models.Index(fields=["recebedor_ispb", "-id"], name="pix_recebedor_idx"),
        ]

    def __str__(self) -> str:
        return self.end_to_end_id
