"""Per-topic Kafka configuration for production, used by `hub topics ensure`.

Why these values (docs/scaling.md has the long form):

- Inbound and outbound event topics keep 7 days: long enough to replay a weekend's traffic after
  an incident, short enough to bound disk. The store, not Kafka, is the system of record.
- `hub.dlq.v1` keeps 30 days: a dead letter waits for a human and a fix, then `hub dlq replay`.
- `hub.stock-levels.v1` is compacted: only the newest level per SKU and channel matters (the key is
  `{sku}@{channel}`), so a connector that starts from the beginning reads one record per key, not
  the whole history.
- `min.insync.replicas=2` once there are at least 3 replicas: with producers on `acks=all`, a write
  is acknowledged only when two brokers have it, and one broker can be down without refusing writes.
  Below 3 replicas it is left at the broker's default so a single-broker setup accepts writes.
"""

from __future__ import annotations

from schemas import topics

DAY_MS = 24 * 60 * 60 * 1000
EVENT_RETENTION_MS = 7 * DAY_MS
DLQ_RETENTION_MS = 30 * DAY_MS
#: How long a tombstone (a deleted SKU's null record) stays readable on the compacted topic.
COMPACTED_DELETE_RETENTION_MS = DAY_MS


def topic_configs(partitions: int, replication: int) -> dict[str, dict[str, str]]:
    """Kafka topic configs (name → config) for every topic in `schemas.topics.ALL`.

    `partitions` and `replication` are the values the topics are created with (HUB_TOPIC_PARTITIONS,
    HUB_TOPIC_REPLICATION); they are validated here because the configs depend on them.
    """
    if partitions < 1:
        raise ValueError(f"partitions must be at least 1, got {partitions}")
    if replication < 1:
        raise ValueError(f"replication must be at least 1, got {replication}")
    configs: dict[str, dict[str, str]] = {}
    for name in topics.ALL:
        if name == topics.STOCK_LEVELS:
            config = {
                "cleanup.policy": "compact",
                "delete.retention.ms": str(COMPACTED_DELETE_RETENTION_MS),
            }
        elif name == topics.DLQ:
            config = {"cleanup.policy": "delete", "retention.ms": str(DLQ_RETENTION_MS)}
        else:
            config = {"cleanup.policy": "delete", "retention.ms": str(EVENT_RETENTION_MS)}
        if replication >= 3:
            config["min.insync.replicas"] = "2"
        configs[name] = config
    return configs
