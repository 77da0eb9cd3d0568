"""Create the hub's topics explicitly (brokers that auto-create give the wrong partitions)."""

from __future__ import annotations

import contextlib
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from schemas import topics


def _configs(partitions: int, replication: int) -> dict[str, dict[str, str]]:
    try:
        from hub.topics_config import topic_configs
    except ImportError:  # pragma: no cover - optional module
        return {}
    return topic_configs(partitions, replication)


async def ensure_topics(
    bootstrap: str,
    *,
    partitions: int,
    replication: int = 1,
    client: dict[str, Any] | None = None,
    with_configs: bool | None = None,
) -> list[str]:
    """Create every missing hub topic; returns the names created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **(client or {}))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics.ALL if t not in existing]
        if not missing:
            return []
        # Per-topic configs (retention, compaction, min ISR) only where the broker has them:
        # the embedded broker ignores most of them, a production Kafka honours them.
        configs = _configs(partitions, replication) if with_configs is not False else {}
        new = [
            NewTopic(t, partitions, replication, topic_configs=configs.get(t, {})) for t in missing
        ]
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics(new)
        return missing
    finally:
        await admin.close()


async def missing_topics(bootstrap: str, client: dict[str, Any] | None = None) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **(client or {}))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        return [t for t in topics.ALL if t not in existing]
    finally:
        await admin.close()
