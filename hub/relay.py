"""The outbox relay: publishes committed outbox rows in id order, then deletes them.

At-least-once: a crash between publish and delete re-publishes those rows; every message keeps
its id, so consumers drop the duplicate. Rows of one key are committed in id order (the core
holds that key's lock while writing them), so per-key order is kept. On PostgreSQL a session
advisory lock elects one active relay among replicas; the others wait as hot standbys.

A published row is deleted, not marked sent: the mark changed the column that tells pending rows
apart, so it was never a heap-only update and wrote the row again in full, with a new index
entry, before a later delete wrote a third time. Kafka keeps what went out.

Logs: each reservation decision it publishes (`reservation.published`, one line per order with
its correlation id, message id and type) and each dead letter (`dead_letter.published`). Rows go
out with the headers the core wrote (a stock level names the orders that changed it itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

import structlog
from sqlalchemy import BigInteger, Text, bindparam, cast, delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from hub.bus import BrokerUnavailable
from hub.kafka.producer import KafkaPublisher
from hub.observe import record_fields
from hub.store.locks import one_of
from hub.store.models import OutboxRow, table
from hub.store.outbox import CHANNEL as OUTBOX_CHANNEL
from schemas import topics
from schemas.base import now_utc

log = structlog.get_logger("hub.relay")

ADVISORY_KEY = 0x4855_4252  # "HUBR"
_decode_json = json.JSONDecoder().decode
_LINE_FIELDS = ("sku", "location", "quantity", "requested", "reason")
_OUTBOX = table(OutboxRow)
# The pending rows, oldest first, through the table itself (no ORM entities to build) and with
# the headers as their stored text, decoded here by one bound decoder rather than by the
# driver's JSON codec per row.
_PENDING = (
    select(
        _OUTBOX.c.id,
        _OUTBOX.c.topic,
        _OUTBOX.c.key,
        cast(_OUTBOX.c.headers, Text),
        _OUTBOX.c.payload,
    )
    .where(_OUTBOX.c.sent_at.is_(None))
    .order_by(_OUTBOX.c.id)
    .limit(bindparam("n"))
)


def _json_object(payload: bytes) -> dict[str, Any]:
    try:
        loaded = _decode_json(payload.decode())
    except ValueError:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return {}
    return loaded if isinstance(loaded, dict) else {}


class OutboxRelay:
    def __init__(
        self,
        engine: AsyncEngine,
        sessions: async_sessionmaker[AsyncSession],
        publisher: KafkaPublisher,
        *,
        batch_size: int = 2000,
        interval: float = 0.05,
        on_published: Callable[[int], None] | None = None,
    ) -> None:
        self.engine = engine
        self.sessions = sessions
        self.publisher = publisher
        self.batch_size = batch_size
        self.interval = interval
        self.on_published = on_published
        self._wake = asyncio.Event()
        self._leader_conn: AsyncConnection | None = None
        self.published = 0

    def notify(self, *_: object) -> None:
        """Wake the relay now: the core committed outbox rows, in this process or, announced on
        PostgreSQL, in any (a notification listener's arguments are ignored)."""
        self._wake.set()

    async def _lead(self) -> bool:
        """Whether this relay may publish: it holds the advisory lock, or takes it now. The lock
        is held by a session of its own, in autocommit so that it keeps no transaction open (an
        idle transaction would hold back VACUUM for as long as the relay leads). That session is
        checked before each publish (`_still_leading`), not on every poll."""
        if self.engine.dialect.name != "postgresql" or self._leader_conn is not None:
            return True
        conn = await self.engine.connect()
        try:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            got = (
                await conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": ADVISORY_KEY})
            ).scalar()
        except BaseException:  # failed or cancelled, perhaps holding the lock: close it all
            _terminate(conn)
            raise
        if got:
            self._leader_conn = conn  # first, so that `_resign` unlocks whatever follows
            # Woken by the core's commits from here on (`hub.store.outbox`), not only by polls.
            try:
                driver = (await conn.get_raw_connection()).driver_connection
                assert driver is not None  # a live pooled connection
                await driver.add_listener(OUTBOX_CHANNEL, self.notify)
                log.info("relay is the active publisher")
            except Exception as exc:
                log.warning(
                    "relay is the active publisher, without the core's announcements; polling",
                    error=repr(exc)[:200],
                )
            return True
        await conn.close()
        return False

    async def _still_leading(self) -> bool:
        """The session that holds the lock is alive (so no other relay can have taken it)."""
        if self._leader_conn is None:
            return True  # not elected through the lock: SQLite, or a drain outside `run`
        try:
            await self._leader_conn.execute(text("SELECT 1"))
            return True
        except Exception:
            log.warning("relay lost its lock's session; standing down")
            await self._resign()
            return False

    async def drain_once(self) -> int:
        """Publish one batch of pending rows; returns how many were sent."""
        async with self.engine.connect() as conn:
            if self.engine.dialect.name == "postgresql":
                # One statement alone: no BEGIN and ROLLBACK around it on every poll.
                await conn.execution_options(isolation_level="AUTOCOMMIT")
            rows = (await conn.execute(_PENDING, {"n": self.batch_size})).all()
        if not rows or not await self._still_leading():
            return 0
        items: list[tuple[str, str | None, bytes, list[tuple[str, bytes]]]] = []
        decisions: list[tuple[int, str, dict[str, str], dict[str, Any]]] = []
        verbose = log.is_enabled_for(logging.INFO)
        for row_id, topic, key, header_text, raw in rows:
            payload = bytes(raw)
            pairs = _decode_json(header_text)
            if topic == topics.DLQ:
                decisions.append((row_id, topic, dict(pairs), {}))
            elif verbose and topic == topics.RESERVATIONS:
                decisions.append((row_id, topic, dict(pairs), _json_object(payload)))
            items.append((topic, key, payload, [(k, v.encode()) for k, v in pairs]))
        await self.publisher.send_in_order(items)
        for row_id, topic, names, body in decisions:
            _log_published(row_id, topic, names, body)
        async with self.sessions() as session, session.begin():
            await session.execute(
                delete(_OUTBOX).where(
                    one_of(session, _OUTBOX.c.id, [r[0] for r in rows], BigInteger)
                )
            )
        self.published += len(rows)
        if self.on_published:
            self.on_published(len(rows))
        return len(rows)

    async def prune(self) -> int:
        """Delete rows marked sent instead of deleted: by a relay of an earlier version still
        running beside this one during an upgrade."""
        async with self.sessions() as session, session.begin():
            res = await session.execute(delete(OutboxRow).where(OutboxRow.sent_at.is_not(None)))
            return int(getattr(res, "rowcount", 0) or 0)

    async def backlog(self) -> tuple[int, float]:
        """Pending rows and the age in seconds of the oldest."""
        async with self.sessions() as session:
            count, oldest = (
                await session.execute(
                    select(func.count(), func.min(OutboxRow.created_at)).where(
                        OutboxRow.sent_at.is_(None)
                    )
                )
            ).one()
        age = (
            (now_utc() - oldest.replace(tzinfo=oldest.tzinfo or now_utc().tzinfo)).total_seconds()
            if oldest
            else 0.0
        )
        return int(count), max(0.0, age)

    async def run(self, stop: asyncio.Event) -> None:
        last_prune = 0.0
        loop = asyncio.get_running_loop()
        backoff = self.interval
        try:
            while not stop.is_set():
                wake_on = [self._wake, stop]
                try:
                    if not await self._lead():
                        await wait_any([stop], 2.0)
                        continue
                    self._wake.clear()  # a wake-up from here on means rows this drain may miss
                    sent = await self.drain_once()
                    backoff = self.interval
                    if loop.time() - last_prune > 60:
                        last_prune = loop.time()
                        await self.prune()
                    if sent == self.batch_size:
                        continue
                except Exception as exc:
                    if isinstance(exc, BrokerUnavailable):
                        log.warning("relay cannot publish; retrying", error=str(exc)[:200])
                    else:
                        log.error("relay error; retrying", error=repr(exc)[:300])
                    backoff = min(5.0, max(backoff * 2, 0.2))
                    wake_on = [stop]  # new rows do not cut short the backoff from a failure
                await wait_any(wake_on, backoff)
        finally:  # stopped, or cancelled: a standby may take over at once
            await self._resign()

    async def _resign(self) -> None:
        """Give the lead up: stop listening and unlock before the session goes back to the pool
        (a pooled session would keep the lock, and no standby could take over); if either
        fails, the session is closed, and the lock and the listening with it."""
        conn, self._leader_conn = self._leader_conn, None
        if conn is None:
            return
        try:
            # Nor one that listens: the pool's next user would wake this relay.
            driver = (await conn.get_raw_connection()).driver_connection
            if driver is not None:
                await driver.remove_listener(OUTBOX_CHANNEL, self.notify)
            await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_KEY})
            await conn.close()
        except BaseException as exc:  # failed, or cancelled again while resigning
            _terminate(conn)  # the session ends, and the lock and the listening with it
            if not isinstance(exc, Exception):
                raise


def _terminate(conn: AsyncConnection) -> None:
    """Close the server session under `conn` at once, without awaiting anything (so that a
    cancelled task still does it), and never hand it back to the pool."""
    with contextlib.suppress(Exception):
        sync = conn.sync_connection
        if sync is None:
            return
        driver = sync.connection.driver_connection
        if driver is not None:
            driver.terminate()
        sync.invalidate()  # the pool drops it, and `conn` knows


def _log_published(
    outbox_id: int, topic: str, headers: dict[str, str], body: dict[str, Any]
) -> None:
    # One line per record: its fields go on the line itself, nothing to bind and restore.
    fields = record_fields(headers.items(), topic=topic)
    if topic == topics.DLQ:
        log.warning(
            "dead_letter.published",
            outbox_id=outbox_id,
            from_topic=headers.get("dlq_topic"),
            consumer=headers.get("dlq_consumer"),
            error=headers.get("dlq_error", "")[:300],
            **fields,
        )
        return
    ce_type = str(fields.get("message_type", ""))
    lines = [ln for ln in body.get("lines") or () if isinstance(ln, dict)]
    log.info(
        "reservation.published",
        outbox_id=outbox_id,
        decision=ce_type.removeprefix("hub.reservation.").removesuffix(".v1"),
        order_key=body.get("order_key"),
        lines=[{k: ln[k] for k in _LINE_FIELDS if k in ln} for ln in lines[:20]],
        **fields,
    )


async def wait_any(events: list[asyncio.Event], seconds: float) -> None:
    """Return when any event is set or the timeout passes; leaves no task behind."""
    tasks = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(tasks, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
