"""The real Publisher: aiokafka with acks=all, batched sends awaited together.

Many records at once (the relay's drains, from `BATCH_FROM` records) are grouped by partition and
handed to the client as record batches, one future per batch, instead of one `send` and one
future per record: a third of the client CPU per record. Keys go to the partition Kafka's own
clients choose (murmur2 of the key, as the Java client and aiokafka's default partitioner
compute it), whichever path their records take: both ask the same `KeyPartitioner`.
"""

from __future__ import annotations

import asyncio
import random
import struct
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.conn import CloseReason
from aiokafka.errors import KafkaError

from hub.bus import BrokerUnavailable
from schemas.envelope import Envelope

# Closes that mean the broker or the path to it failed; an idle drop or a shutdown does not.
_BREAKS = frozenset(
    {CloseReason.CONNECTION_BROKEN, CloseReason.CONNECTION_TIMEOUT, CloseReason.OUT_OF_SYNC}
)


# From this many records a send goes as record batches; fewer (a webhook's few messages, sent
# by many requests at once) are added record by record, which also lets concurrent requests
# share one batch.
BATCH_FROM = 32
_M = 0x5BD1E995
_WORDS = struct.Struct("<I").iter_unpack


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 of a key (org.apache.kafka.common.utils.Utils.murmur2), unsigned.

    The same value as aiokafka's `partitioner.murmur2`, in fewer Python operations: the words
    unpacked at once, each product masked once."""
    length = len(data)
    h = 0x9747B28C ^ length
    body = length & ~3
    for (k,) in _WORDS(data[:body]):
        k = (k * _M) & 0xFFFFFFFF
        k = ((k ^ (k >> 24)) * _M) & 0xFFFFFFFF
        h = ((h * _M) & 0xFFFFFFFF) ^ k
    extra = length & 3
    if extra:
        if extra == 3:
            h ^= data[body + 2] << 16
        if extra >= 2:
            h ^= data[body + 1] << 8
        h = ((h ^ data[body]) * _M) & 0xFFFFFFFF
    h = ((h ^ (h >> 13)) * _M) & 0xFFFFFFFF
    return h ^ (h >> 15)


class KeyPartitioner:
    """aiokafka's default partitioner (murmur2 of the key; no key: any available partition),
    with the hashes of recently seen keys remembered: stock levels and SKU events repeat keys."""

    def __init__(self, remember: int = 65536) -> None:
        self._hashes: dict[bytes, int] = {}
        self._remember = remember

    def hash(self, key: bytes) -> int:
        h = self._hashes.get(key)
        if h is None:
            if len(self._hashes) >= self._remember:
                self._hashes.clear()
            h = self._hashes[key] = murmur2(key) & 0x7FFFFFFF
        return h

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            return random.choice(available or all_partitions)
        return all_partitions[self.hash(key) % len(all_partitions)]


async def _all_or_first_failure(futures: list[asyncio.Future[Any]]) -> None:
    """Wait for all of `futures`; at the first failure, or when cancelled (the send's time is
    up), cancel the partitions' tasks still running, so that no later batch is handed over
    after the caller gave up, and raise."""
    if not futures:
        return
    try:
        done, pending = await asyncio.wait(futures, return_when=asyncio.FIRST_EXCEPTION)
    except BaseException:
        _stop(futures)
        raise
    for f in done:
        if f.cancelled() or f.exception() is not None:  # cancelled by the client: not sent
            _stop(pending)
            if f.cancelled():
                raise BrokerUnavailable("a send was cancelled")
            raise f.exception()  # type: ignore[misc]


def _stop(futures: Iterable[asyncio.Future[Any]]) -> None:
    for f in futures:
        if isinstance(f, asyncio.Task):
            f.cancel()
        f.add_done_callback(_read_outcome)


def _read_outcome(f: asyncio.Future[Any]) -> None:
    if not f.cancelled():
        f.exception()


class KafkaPublisher:
    """Publishes envelopes; `publish` returns only when Kafka acknowledged all of them.

    A broker that came back without its topics (the embedded one keeps them in memory) would
    acknowledge records into topics that no longer exist, and a 200 would be answered for a
    message nobody will read. A broker cannot restart under a live TCP connection, so the
    publisher watches the producer's connections close: after any close it asks the broker for
    its topic list (a listing creates no topic) before it sends again, and an acknowledgement
    counts only if no connection broke between that listing and the acknowledgement. A send
    during which one broke fails; the caller retries, and after any failure the next send first
    runs `verify`, which re-creates missing topics.
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
        self.partitioner = KeyPartitioner()
        self.producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            partitioner=self.partitioner,
            acks="all",
            linger_ms=2,
            max_batch_size=65536,
            request_timeout_ms=int(timeout * 1000),
            **(client or {}),
        )
        self._started = False
        self._closes = 0  # connections closed for any reason
        self._breaks = 0  # connections closed because the broker or the network failed
        self._trusted: tuple[int, int] | None = None  # (closes, breaks) when topics were listed
        self._listed: set[str] = set()
        self._trust_lock = asyncio.Lock()
        self._turns: dict[tuple[str, int], asyncio.Lock] = {}  # a partition's batch senders
        # Every connection the client makes reports its close here (the callback is read when
        # the connection is made, so it is wrapped before the first one).
        client_ = self.producer.client
        on_close = client_._on_connection_closed

        def closed(conn: Any, reason: Any) -> None:
            self._closes += 1
            if reason in _BREAKS:
                self._breaks += 1
            on_close(conn, reason)

        client_._on_connection_closed = closed

    def _still_trusted(self, topics: set[str]) -> bool:
        return self._trusted == (self._closes, self._breaks) and topics <= self._listed

    async def _trust(self, topics: set[str]) -> tuple[int, int]:
        """Trust the broker behind the current connections once it lists `topics`."""
        async with self._trust_lock:
            if not self._still_trusted(topics):
                self._trusted = None
                before = (self._closes, self._breaks)
                listed = (await self.producer.client.fetch_all_metadata()).topics()
                if self._breaks != before[1]:
                    raise BrokerUnavailable("a connection to the broker broke while listing topics")
                missing = sorted(topics - listed)
                if missing:
                    raise BrokerUnavailable(f"the broker does not know {', '.join(missing)}")
                # Connections the listing itself made or dropped are part of what it saw.
                self._trusted, self._listed = (self._closes, self._breaks), set(listed)
            assert self._trusted is not None
            return self._trusted

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
        await self._send(items, ordered=False)

    async def send_in_order(
        self, items: Sequence[tuple[str, str | None, bytes, list[tuple[str, bytes]]]]
    ) -> None:
        """`send_many`, keeping each key's records in order even when a send fails part way
        (the relay's): always as record batches, a partition's next one handed over once the one
        before it is acknowledged (`_send_batches`). Few records added one by one may share a
        batch with other callers' and open the next; the first failing and the next stored, a
        retry would store the failed ones after it."""
        await self._send(items, ordered=True)

    async def _send(
        self,
        items: Sequence[tuple[str, str | None, bytes, list[tuple[str, bytes]]]],
        *,
        ordered: bool,
    ) -> None:
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
                            self._trusted = None
                sent = {topic for topic, *_ in items}
                trusted = self._trusted
                if trusted is None or not self._still_trusted(sent):
                    trusted = await self._trust(sent)
                if not ordered and len(items) < BATCH_FROM:
                    futures = await self._send_records(items)
                else:
                    futures = await self._send_batches(items, ordered=ordered)
                await _all_or_first_failure(futures)
                if self._breaks != trusted[1]:
                    raise BrokerUnavailable("a connection to the broker broke during the send")
        except BrokerUnavailable:
            self._suspect = self.verify is not None
            raise
        except (KafkaError, TimeoutError, OSError) as exc:
            self._suspect = self.verify is not None
            raise BrokerUnavailable(f"broker did not acknowledge: {exc!r}") from exc

    async def _send_records(
        self, items: Sequence[tuple[str, str | None, bytes, list[tuple[str, bytes]]]]
    ) -> list[asyncio.Future[Any]]:
        """Add the records one by one (concurrent callers' records share batches); a failure
        part way leaves no queued record's outcome unread."""
        futures: list[asyncio.Future[Any]] = []
        try:
            for topic, key, value, headers in items:
                k = key.encode() if key is not None else None
                futures.append(await self.producer.send(topic, value=value, key=k, headers=headers))
        except BaseException:
            _stop(futures)
            raise
        return futures

    async def _send_batches(
        self,
        items: Sequence[tuple[str, str | None, bytes, list[tuple[str, bytes]]]],
        *,
        ordered: bool,
    ) -> list[asyncio.Future[Any]]:
        """Queue the records as record batches, one per partition and 64 KB; per partition in
        the order given (so per key: a key has one partition). One task a partition.

        `ordered`: a partition's next batch is handed over only once its previous one is
        acknowledged.
        Without an idempotent producer (the embedded broker has none) the client fails a batch
        that outlived its request timeout after a retryable error, such as a leader failover,
        and would then send the partition's next batch: that one stored, the failed one sent
        again by the caller's retry would land after it, and a key's messages out of order (a
        PO's cancellation before its issue). Held back, the next batch is never sent, and the
        retry sends both in order. The client sends one request per partition at a time anyway,
        so the wait costs the time from an acknowledgement to the hand-over. The partitions go
        side by side; on one partition callers take turns handing over (the client lets a batch
        wait for the partition's previous one to leave, and callers waiting together could each
        run out of time while others went first), not waiting for acknowledgements."""
        producer = self.producer
        partitions: dict[str, list[int]] = {}
        groups: dict[tuple[str, int], list[tuple[bytes | None, bytes, Any]]] = {}
        for topic, key, value, headers in items:
            parts = partitions.get(topic)
            if parts is None:
                parts = partitions[topic] = sorted(await producer.partitions_for(topic))
            k = key.encode() if key is not None else None
            p = self.partitioner(k, parts, parts)
            groups.setdefault((topic, p), []).append((k, value, headers))
        return [
            asyncio.ensure_future(self._partition(topic, p, records, ordered))
            for (topic, p), records in groups.items()
        ]

    async def _partition(
        self, topic: str, p: int, records: list[tuple[bytes | None, bytes, Any]], ordered: bool
    ) -> None:
        """A partition's records as batches; `ordered`, each handed over once the one before it
        is acknowledged."""
        producer = self.producer
        batches = [producer.create_batch()]
        for k, value, headers in records:
            if batches[-1].append(key=k, value=value, timestamp=None, headers=headers) is None:
                batches.append(producer.create_batch())  # full: the record opens the next
                batches[-1].append(key=k, value=value, timestamp=None, headers=headers)
        turn = self._turns.setdefault((topic, p), asyncio.Lock())
        sent: list[asyncio.Future[Any]] = []
        try:
            for batch in batches:
                async with turn:
                    sent.append(await producer.send_batch(batch, topic, partition=p))
                if ordered:
                    await sent[-1]
        except BaseException:
            _stop(sent)
            raise
        await _all_or_first_failure(sent)

    def suspect(self) -> None:
        """Verify topics before the next send (e.g. when a watcher saw the broker restart)."""
        self._suspect = self.verify is not None

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        await self.send_many([(e.topic, e.key, e.body(), e.headers()) for e in envelopes])
