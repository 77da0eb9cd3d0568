"""The hub's Prometheus metrics, all in one registry.

Importing this module only defines the metrics and registers them in `REGISTRY` (a registry of the
hub's own, not prometheus_client's global one, so tests and several apps in one process do not
collide). Every role updates these objects; `GET /metrics` serves `exposition()`.

The consumer-lag names and labels are those of kafka-lag-exporter, so dashboards and alerts written
for it work unchanged against the hub.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

REGISTRY = CollectorRegistry(auto_describe=True)

#: The `Content-Type` of `exposition()` (Prometheus text format 0.0.4).
CONTENT_TYPE = CONTENT_TYPE_LATEST

#: Consumer group states, after Burrow's evaluation rules.
GROUP_STATUSES = ("OK", "WARNING", "STALL", "STOP", "REWIND", "ERR")

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_PUSH_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_BATCH_SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
_BATCH_SIZE_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2000, 5000, 10000)

# --- Consumer lag (kafka-lag-exporter names) ------------------------------------------------------

GROUP_LAG = Gauge(
    "kafka_consumergroup_group_lag",
    "Offset lag of a consumer group on a partition: end offset minus committed offset.",
    ["group", "topic", "partition"],
    registry=REGISTRY,
)
GROUP_LAG_SECONDS = Gauge(
    "kafka_consumergroup_group_lag_seconds",
    "Time lag of a consumer group on a partition: estimated age of the oldest unconsumed message.",
    ["group", "topic", "partition"],
    registry=REGISTRY,
)
GROUP_MAX_LAG = Gauge(
    "kafka_consumergroup_group_max_lag",
    "Largest offset lag of a consumer group over its partitions.",
    ["group"],
    registry=REGISTRY,
)
GROUP_MAX_LAG_SECONDS = Gauge(
    "kafka_consumergroup_group_max_lag_seconds",
    "Largest time lag of a consumer group over its partitions.",
    ["group"],
    registry=REGISTRY,
)
GROUP_SUM_LAG = Gauge(
    "kafka_consumergroup_group_sum_lag",
    "Sum of the offset lag of a consumer group over its partitions.",
    ["group"],
    registry=REGISTRY,
)
GROUP_STATUS = Gauge(
    "hub_consumergroup_status",
    "Consumer group status (Burrow's rules), one-hot: 1 for the current status, 0 for the others.",
    ["group", "status"],
    registry=REGISTRY,
)

# --- Gateway --------------------------------------------------------------------------------------

WEBHOOKS_RECEIVED = Counter(
    "hub_webhooks_received",
    "Webhooks received, by connector and outcome (accepted, duplicate, unauthorized, malformed, "
    "too_large, unknown_account, unavailable).",
    ["connector", "outcome"],
    registry=REGISTRY,
)
WEBHOOK_LATENCY = Histogram(
    "hub_webhook_latency_seconds",
    "Time from receiving a webhook to answering it (including the durable publish).",
    ["connector"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)

# --- Core -----------------------------------------------------------------------------------------

RESERVATIONS = Counter(
    "hub_reservations",
    "Orders decided by the core, by outcome (accepted, rejected).",
    ["outcome"],
    registry=REGISTRY,
)
OVERSELL_REFUSED = Counter(
    "hub_oversell_attempts_refused",
    "Order lines refused because available stock was insufficient.",
    registry=REGISTRY,
)
MESSAGES_PROCESSED = Counter(
    "hub_messages_processed",
    "Canonical messages processed (duplicates included), by consumer and message type.",
    ["consumer", "type"],
    registry=REGISTRY,
)
CORE_BATCH_SECONDS = Histogram(
    "hub_core_batch_seconds",
    "Time the core takes for one batch, from fetch to offset commit.",
    buckets=_BATCH_SECONDS_BUCKETS,
    registry=REGISTRY,
)
CORE_BATCH_SIZE = Histogram(
    "hub_core_batch_size",
    "Messages in one core batch.",
    buckets=_BATCH_SIZE_BUCKETS,
    registry=REGISTRY,
)
VOUCHERS_ISSUED = Counter(
    "hub_vouchers_issued",
    "Accounting vouchers written to the outbox.",
    registry=REGISTRY,
)
VOUCHERS_DELIVERED = Counter(
    "hub_vouchers_delivered",
    "Vouchers delivered to finance accounts, by outcome.",
    ["account", "outcome"],
    registry=REGISTRY,
)
PURCHASE_ORDERS_ISSUED = Counter(
    "hub_purchase_orders_issued",
    "Purchase orders issued to suppliers.",
    registry=REGISTRY,
)

# --- Outbox relay and dead letters ----------------------------------------------------------------

OUTBOX_BACKLOG = Gauge(
    "hub_outbox_backlog",
    "Outbox rows not yet published to Kafka.",
    registry=REGISTRY,
)
OUTBOX_OLDEST_AGE = Gauge(
    "hub_outbox_oldest_age_seconds",
    "Age of the oldest unpublished outbox row (0 when the outbox is empty).",
    registry=REGISTRY,
)
DLQ_MESSAGES = Gauge(
    "hub_dlq_messages",
    "Dead letters waiting for a replay.",
    registry=REGISTRY,
)
DEAD_LETTERS = Counter(
    "hub_dead_letters",
    "Messages sent to the dead-letter topic, by original topic and reason (the error kind, "
    "e.g. invalid, unknown_type; never free text).",
    ["topic", "reason"],
    registry=REGISTRY,
)

# --- Connectors -----------------------------------------------------------------------------------

STOCK_PUSHES = Counter(
    "hub_stock_pushes",
    "Available-to-sell pushes to a platform, by account and outcome (ok, retried, failed).",
    ["account", "outcome"],
    registry=REGISTRY,
)
STOCK_PUSH_LATENCY = Histogram(
    "hub_stock_push_latency_seconds",
    "Time one stock push to a platform takes, retries included.",
    ["account"],
    buckets=_PUSH_BUCKETS,
    registry=REGISTRY,
)
CONNECTOR_HEALTHY = Gauge(
    "hub_connector_healthy",
    "1 when the account's connector reached its platform at its last attempt, else 0.",
    ["account", "connector"],
    registry=REGISTRY,
)


def set_group_status(group: str, status: str) -> None:
    """Mark `status` as the group's current status (1) and every other status 0."""
    if status not in GROUP_STATUSES:
        raise ValueError(f"unknown consumer group status {status!r}; one of {GROUP_STATUSES}")
    for candidate in GROUP_STATUSES:
        GROUP_STATUS.labels(group=group, status=candidate).set(1 if candidate == status else 0)


def set_partition_lag(
    group: str, topic: str, partition: int, *, messages: int, seconds: float
) -> None:
    """Record one partition's lag for a group (offset lag and time lag)."""
    labels = {"group": group, "topic": topic, "partition": str(partition)}
    GROUP_LAG.labels(**labels).set(messages)
    GROUP_LAG_SECONDS.labels(**labels).set(seconds)


def set_group_lag_totals(group: str, *, max_messages: int, max_seconds: float, total: int) -> None:
    """Record a group's lag aggregated over its partitions."""
    GROUP_MAX_LAG.labels(group=group).set(max_messages)
    GROUP_MAX_LAG_SECONDS.labels(group=group).set(max_seconds)
    GROUP_SUM_LAG.labels(group=group).set(total)


def faststream_middleware() -> Any:
    """FastStream's Prometheus middleware on the hub's registry: per-handler figures
    (`faststream_received_messages_total`, `faststream_message_process_duration_seconds`, …).
    Instances share the registered metrics, so every broker of a process may have one."""
    from faststream.kafka.prometheus import KafkaPrometheusMiddleware

    return KafkaPrometheusMiddleware(registry=REGISTRY, app_name="hub")


def exposition() -> bytes:
    """The registry in the Prometheus text format, as served on `GET /metrics`."""
    return generate_latest(REGISTRY)
