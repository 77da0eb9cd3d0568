"""The real Publisher: aiokafka with acks=all, batched sends awaited together."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from hub.bus import BrokerUnavailable
from schemas.envelope import Envelope


class KafkaPublisher:
    """Publishes envelopes; `publish` returns only when Kafka acknowledged all of them."""

    def __init__(
        self, bootstrap: str, *, client: dict[str, Any] | None = None, timeout: float = 4.0
    ) -> None:
        self.timeout = timeout
        self.producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            linger_ms=2,
            max_batch_size=65536,
            request_timeout_ms=int(timeout * 1000),
            **(client or {}),
        )
        self._started = False

    async def start(self) -> None:
        await self.producer.start()
        self._started = True

    async def stop(self) -> None:
        if self._started:
            await self.producer.stop()
            self._started = False

    async def send_many(
        self, items: Sequence[tuple[str, str | None, bytes, list[tuple[str, bytes]]]]
    ) -> None:
        """Send (topic, key, value, headers) records; wait for every acknowledgement."""
        if not self._started:
            raise BrokerUnavailable("publisher not started")
        try:
            async with asyncio.timeout(self.timeout):
                futures = [
                    await self.producer.send(
                        topic,
                        value=value,
                        key=key.encode() if key is not None else None,
                        headers=headers,
                    )
                    for topic, key, value, headers in items
                ]
                await asyncio.gather(*futures)
        except (KafkaError, TimeoutError, OSError) as exc:
            raise BrokerUnavailable(f"broker did not acknowledge: {exc!r}") from exc

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        await self.send_many([(e.topic, e.key, e.body(), e.headers()) for e in envelopes])
