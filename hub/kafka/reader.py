"""Read a whole topic from the beginning without joining a group (checks, demo, reconcile)."""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition


async def read_topic(
    bootstrap: str, topic: str, *, idle_ms: int = 300, client: dict[str, Any] | None = None
) -> list[ConsumerRecord[Any, Any]]:
    """Every record now in `topic`, partition by partition, stopping once nothing new arrives."""
    c = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **(client or {}),
    )
    await c.start()
    out: list[ConsumerRecord[Any, Any]] = []
    try:
        parts = c.partitions_for_topic(topic) or set()
        if not parts:
            await c._client.force_metadata_update()
            parts = c.partitions_for_topic(topic) or set()
        if not parts:
            return out
        c.assign([TopicPartition(topic, p) for p in sorted(parts)])
        await c.seek_to_beginning()
        idle = 0
        while idle < 2:
            got = await c.getmany(timeout_ms=idle_ms)
            idle = 0 if got else idle + 1
            for recs in got.values():
                out.extend(recs)
    finally:
        await c.stop()
    return out
