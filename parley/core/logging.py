"""Structured logging: JSON lines in production, readable lines in development.

Every line carries what is bound to structlog's context variables: the request
id (see :mod:`parley.core.middleware`) and, inside services and tasks, the
conversation and message ids.
"""

from __future__ import annotations

import logging.config
from typing import Any

import structlog

_SHARED: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def configure_logging(*, level: str, fmt: str) -> None:
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {
                "structlog": {
                    "()": structlog.stdlib.ProcessorFormatter,
                    "processors": [
                        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                        structlog.processors.format_exc_info,
                        renderer,
                    ],
                    "foreign_pre_chain": _SHARED,
                },
            },
            "handlers": {
                "console": {"class": "logging.StreamHandler", "formatter": "structlog"},
            },
            "root": {"handlers": ["console"], "level": level},
            "loggers": {
                # Django logs every 4xx as a warning; the problem body already says why.
                "django.request": {"level": "ERROR"},
                "celery.app.trace": {"level": "WARNING"},
                # Four sweeps a second would log eight lines a second; the
                # services log what they do (group_replied, orphan_adopted).
                "celery.worker.strategy": {"level": "WARNING"},
                "celery.beat": {"level": "WARNING"},
            },
        }
    )
    structlog.configure(
        processors=[
            *_SHARED,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
