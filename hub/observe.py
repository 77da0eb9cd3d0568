"""Logging (structlog, JSON off a terminal) and the bridge from core results to metrics.

Correlation: one id follows an order from its webhook to the reservation, the stock push and the
voucher. The gateway assigns it, the CloudEvents header `ce_correlationid` carries it through
Kafka, and every consumer binds it (with the message id, type and the record's topic, partition
and offset) in structlog's context variables while it handles that record, then restores the
context, so each log line names the order it is about and no line names an order it is not.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

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


# A batch line names at most this many correlation ids, and how many more there were.
MAX_LOGGED_IDS = 20

_FIELDS = {"ce_correlationid": "correlation_id", "ce_id": "message_id", "ce_type": "message_type"}
_RECORD_KEYS = (*_FIELDS.values(), "topic", "partition", "offset")


def header_value(headers: Iterable[Sequence[Any]] | None, name: str) -> str | None:
    """One header of a Kafka record (bytes or text values), or None."""
    for k, v in headers or ():
        if k == name and v is not None:
            return v.decode("utf-8", "replace") if isinstance(v, bytes | bytearray) else str(v)
    return None


def record_fields(
    headers: Iterable[Sequence[Any]] | None,
    *,
    topic: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
) -> dict[str, Any]:
    """The log fields of one record: correlation id, message id and type, and where it was read."""
    fields: dict[str, Any] = {}
    for k, v in headers or ():
        name = _FIELDS.get(k)
        if name is not None and v is not None and name not in fields:
            fields[name] = v.decode("utf-8", "replace") if isinstance(v, bytes | bytearray) else v
    where = {"topic": topic, "partition": partition, "offset": offset}
    fields.update({k: v for k, v in where.items() if v is not None})
    return fields


@contextlib.contextmanager
def bound_record(
    headers: Iterable[Sequence[Any]] | None,
    *,
    topic: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
    **extra: Any,
) -> Iterator[dict[str, Any]]:
    """Bind one record's fields for the log lines written while it is handled; on exit the
    context is what it was before (nothing of this record leaks into the next)."""
    fields = {**record_fields(headers, topic=topic, partition=partition, offset=offset), **extra}
    # Tokens, not `bound_contextvars`: that one copies the whole context twice per record.
    # A field the record lacks is masked (`...` is structlog's "unbound"), so that no id of an
    # enclosing context passes for this record's.
    masked = {k: ... for k in _RECORD_KEYS if k not in fields}
    tokens = structlog.contextvars.bind_contextvars(**masked, **fields)
    try:
        yield fields
    finally:
        structlog.contextvars.reset_contextvars(**tokens)


def bound_consumer_record(r: Any) -> contextlib.AbstractContextManager[dict[str, Any]]:
    """`bound_record` for a consumer record (aiokafka's, or the core's `Record`)."""
    return bound_record(r.headers, topic=r.topic, partition=r.partition, offset=r.offset)


def bounded_ids(ids: Iterable[str | None], limit: int = MAX_LOGGED_IDS) -> dict[str, Any]:
    """`correlation_ids` for a batch line: distinct, in order, at most `limit`, plus how many
    were left out (`correlation_ids_more`) when there were more."""
    seen: dict[str, None] = {}
    for i in ids:
        if i:
            seen.setdefault(i, None)
    distinct = list(seen)
    out: dict[str, Any] = {"correlation_ids": distinct[:limit]}
    if len(distinct) > limit:
        out["correlation_ids_more"] = len(distinct) - limit
    return out


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
