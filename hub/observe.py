"""Logging (structlog, JSON off a terminal) and the bridge from core results to metrics."""

from __future__ import annotations

import logging
import sys

import structlog

from hub import metrics
from hub.core.batch import BatchResult


class _StderrLogger:
    """Writes to whatever `sys.stderr` is at the time of the call (not at configuration)."""

    def __init__(self, *_args: object) -> None:
        pass

    def msg(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    log = debug = info = warning = warn = error = critical = exception = fatal = msg


def configure_logging(fmt: str | None = None, level: str = "INFO") -> None:
    fmt = fmt or ("console" if sys.stderr.isatty() else "json")
    renderer: structlog.types.Processor = (
        structlog.dev.ConsoleRenderer() if fmt == "console" else structlog.processors.JSONRenderer()
    )
    lvl = logging.getLevelName(level.upper())
    logging.basicConfig(
        stream=sys.stderr, level=lvl if isinstance(lvl, int) else logging.INFO, format="%(message)s"
    )
    for noisy in ("aiokafka", "faststream", "uvicorn.access", "httpx", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            lvl if isinstance(lvl, int) else logging.INFO
        ),
        logger_factory=_StderrLogger,
        cache_logger_on_first_use=False,
    )


def record_batch(result: BatchResult, consumer: str = "core") -> None:
    """Count what a committed batch did."""
    if result.accepted:
        metrics.RESERVATIONS.labels(outcome="accepted").inc(result.accepted)
    if result.rejected:
        metrics.RESERVATIONS.labels(outcome="rejected").inc(result.rejected)
    if result.lines_refused:
        metrics.OVERSELL_REFUSED.inc(result.lines_refused)
    for type_, n in result.by_type.items():
        metrics.MESSAGES_PROCESSED.labels(consumer=consumer, type=type_).inc(n)
    if result.purchase_orders:
        metrics.PURCHASE_ORDERS_ISSUED.inc(result.purchase_orders)
    if result.vouchers:
        metrics.VOUCHERS_ISSUED.inc(result.vouchers)
    size = result.applied + result.duplicates + result.dead_lettered
    if size:
        metrics.CORE_BATCH_SIZE.observe(size)
