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

    A broker that came back without its topics (the embedded one keeps them in memory) would
    acknowledge records into topics that no longer exist, and a 200 would be answered for a
    message nobody will read. A broker cannot restart under a live TCP connection, so trust is
    kept per connection: when the producer's connections differ from the trusted ones, the broker
    behind them is asked for its topic list (a listing creates no topic) before anything is sent,
    and an acknowledgement counts only if every trusted connection is the same open connection
    after it. A send during which one broke fails; the caller retries, and after any failure the
    next send first runs `verify`, which re-creates missing topics.
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
        self._trusted: dict[int, object] = {}
        self._listed: set[str] = set()
        self._trust_lock = asyncio.Lock()

    def _links(self) -> dict[int, object]:
        """The producer's open connections, by identity (the objects are held, so no id is
        reused while it is compared)."""
        conns = self.producer.client._conns.values()
        return {id(c): c for c in conns if c.connected()}

    def _still_trusted(self, topics: set[str]) -> bool:
        links = self._links()
        return (
            bool(self._trusted) and links.keys() == self._trusted.keys() and topics <= self._listed
        )

    async def _trust(self, topics: set[str]) -> None:
        """Trust the current connections once the broker behind them lists `topics`."""
        async with self._trust_lock:
            if self._still_trusted(topics):
                return
            self._trusted = {}
            client = self.producer.client
            links = self._links()
            if not links:
                await client.force_metadata_update()
                links = self._links()
                if not links:
                    raise BrokerUnavailable("no connection to the broker")
            listed = (await client.fetch_all_metadata()).topics()
            if not links.keys() <= self._links().keys():
                raise BrokerUnavailable("the connection to the broker changed while listing topics")
            missing = sorted(topics - listed)
            if missing:
                raise BrokerUnavailable(f"the broker does not know {', '.join(missing)}")
            self._trusted, self._listed = links, set(listed)

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
                    # One verification at a time: concurrent topic creations race in the broker.
                    async with self._trust_lock:
                        if self._suspect:
                            await self.verify()
                            self._suspect = False
                            self._trusted = {}
                sent = {topic for topic, *_ in items}
                if not self._still_trusted(sent):
                    await self._trust(sent)
                trusted = self._trusted
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
                if not trusted or not trusted.keys() <= self._links().keys():
                    raise BrokerUnavailable("the connection to the broker broke during the send")
        except BrokerUnavailable:
            self._suspect = self.verify is not None
            raise
        except (KafkaError, TimeoutError, OSError) as exc:
            self._suspect = self.verify is not None
            raise BrokerUnavailable(f"broker did not acknowledge: {exc!r}") from exc

    def suspect(self) -> None:
        """Verify topics before the next send (e.g. when a watcher saw the broker restart)."""
        self._suspect = self.verify is not None

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        await self.send_many([(e.topic, e.key, e.body(), e.headers()) for e in envelopes])
