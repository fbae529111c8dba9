"""Structured logs: structlog JSON lines on stderr for every ringmaster process.

Activities bind ``release``, ``ring`` and ``cluster`` to their loggers; workflows log through
``workflow.logger``, which Temporal keeps quiet during replay. Values are names and versions,
never URLs or credentials.
"""

from __future__ import annotations

import logging
import sys

import structlog


def configure(level: str = "INFO") -> None:
    """JSON lines with a timestamp and level; the Temporal SDK's own records go through the same pipe."""
    logging.basicConfig(stream=sys.stderr, level=level, format="%(message)s")
    logging.getLogger("temporalio").setLevel(logging.WARNING)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
