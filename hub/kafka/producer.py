"""The real Publisher: aiokafka with acks=all, batched sends awaited together."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from hub.bus import BrokerUnavailable
from schemas.envelope import Envelope


class KafkaPublisher:
    """Publishes envelopes; `publish` returns only when Kafka acknowledged all of them.

    After any failure the next send first runs `verify` (which re-creates missing topics) and
    refreshes the producer's metadata: a broker that came back without its topics (the embedded
    one keeps them in memory) would otherwise acknowledge records into topics that no longer
    exist, and a 200 would be answered for a message nobody will read.
    """

    def __init__(
        self,
        bootstrap: str,
        *,
        client: dict[str, Any] | None = None,
        timeout: float = 4.0,
        verify: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self.timeout = timeout
        self.verify = verify
        self._suspect = verify is not None
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
                if self._suspect and self.verify is not None:
                    await self.verify()
                    self._suspect = False
                # Fresh metadata before every acknowledged send (concurrent callers share one
                # request): a broker that restarted empty must not ack into forgotten topics.
                await self.producer.client.force_metadata_update()
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
            self._suspect = self.verify is not None
            raise BrokerUnavailable(f"broker did not acknowledge: {exc!r}") from exc

    def suspect(self) -> None:
        """Verify topics before the next send (e.g. when a watcher saw the broker restart)."""
        self._suspect = self.verify is not None

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        await self.send_many([(e.topic, e.key, e.body(), e.headers()) for e in envelopes])
