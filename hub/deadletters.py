"""Dead letters: recording them, and replaying them.

Recording: the core writes its own dead letters to the `dead_letters` table in the transaction
that refuses them. The other consumers (stock pushes, voucher sinks, supplier orders) can only
publish theirs to `hub.dlq.v1`; `record_letters` (the relay role subscribes it) writes those to
the same table, so `hub dlq list` and `replay` see every dead letter. A letter is keyed by its
consumer, topic, partition and offset, and its payload's digest (the core's own, published too,
are found there already);
one with no single origin (a push of coalesced stock levels) is keyed by its place in the
dead-letter topic.

Replaying: send them back to their topic with their original bytes, mark them replayed and audit
it, in one transaction per part (shared by `hub dlq replay` and `POST /api/dlq/replay`). Parts
are small enough to be acknowledged within one send's time limit, so an outage's backlog of
thousands of letters is replayed part by part: one part failing leaves the parts before it
replayed and marked, and a retry goes on from there instead of sending everything again. A
stock level older than the level since published for its SKU and channel is not sent: a push
worker that restarted has forgotten the newer one and would push the stale count. It is marked
replayed as superseded."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog
from pydantic import ValidationError
from sqlalchemy import BigInteger, func, select, update
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hub.audit import record
from hub.core.records import record_ms, time_ms
from hub.finance.ledger import insert
from hub.store import locks
from hub.store.db import payload_digest, stored_headers
from hub.store.models import ChannelLevel, ConnectorCursor, DeadLetter
from schemas import topics
from schemas.base import now_utc
from schemas.levels import StockLevelChanged

RECORDER_GROUP = "hub-dead-letters"
# A part of a replay: at most this many letters and, but for one larger letter alone, this many
# bytes of payload (well within what a broker acknowledges in one send's time limit).
PART_LETTERS = 500
PART_BYTES = 4 * 1024 * 1024
log = structlog.get_logger(__name__)
# A letter's identity: where it came from, its payload and its time (positions start over when
# the embedded broker restarts, and the database keeps the letters of before).
_ORIGIN = ["consumer", "topic", "partition", "offset", "digest", "timestamp_ms"]


Records = Sequence[tuple[str, str | None, bytes, list[tuple[str, bytes]]]]


class Sender(Protocol):
    async def send_many(self, items: Records) -> None: ...


async def pending(session: AsyncSession, ids: Sequence[int] | None) -> list[DeadLetter]:
    """Dead letters not yet replayed (of these ids, or all), oldest first, locked for update."""
    q = select(DeadLetter).where(DeadLetter.replayed_at.is_(None))
    # Ids a part at a time: an outage's dead letters are more than a statement binds.
    if not ids:
        return list((await session.execute(q.order_by(DeadLetter.id).with_for_update())).scalars())
    out: list[DeadLetter] = []
    for part in locks.chunks(sorted(set(ids))):
        found = await session.execute(
            q.where(locks.one_of(session, DeadLetter.id, part, BigInteger))
            .order_by(DeadLetter.id)
            .with_for_update()
        )
        out.extend(found.scalars())
    return out


@dataclass
class Replayed:
    """Dead letters sent back, and stock levels not sent because a newer one was published
    since (letter id → the version published now)."""

    sent: list[int] = field(default_factory=list)
    superseded: dict[int, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"replayed": self.sent}
        if self.superseded:
            out["superseded"] = {str(k): v for k, v in self.superseded.items()}
        return out


async def replay(
    session: AsyncSession, letters: list[DeadLetter], sender: Sender, actor: str
) -> Replayed:
    """Send `letters` (from `pending`, in the caller's transaction), mark them and audit it;
    the mark commits only after the broker acknowledged, so a failure replays nothing twice."""
    if not letters:
        return Replayed()
    superseded = await _superseded(session, letters)
    sent = [d for d in letters if d.id not in superseded]
    if sent:
        await sender.send_many(
            [
                (
                    d.topic,
                    d.key.decode("utf-8", "replace") if d.key else None,
                    d.payload or b"",
                    [(k, v.encode()) for k, v in d.headers],
                )
                for d in sent
            ]
        )
    done = [d.id for d in letters]
    now = now_utc()
    for part in locks.chunks(done):
        await session.execute(
            update(DeadLetter)
            .where(locks.one_of(session, DeadLetter.id, part, BigInteger))
            .values(replayed_at=now)
            .execution_options(synchronize_session=False)  # the letters are not read again
        )
    await record(
        session,
        actor,
        "dlq.replay",
        ",".join(map(str, done)),
        before={
            "letters": [
                {"id": d.id, "topic": d.topic, "partition": d.partition, "offset": d.offset}
                for d in letters
            ],
            "replayed_at": None,
        },
        after={
            "ids": [d.id for d in sent],
            "superseded": {str(k): v for k, v in superseded.items()},
            "replayed_at": now.isoformat(),
        },
    )
    return Replayed([d.id for d in sent], superseded)


class PartlyReplayed(Exception):
    """A replay stopped at a part that failed; `done` holds the parts replayed before it."""

    def __init__(self, done: Replayed, remaining: int, cause: Exception) -> None:
        super().__init__(
            f"replayed {len(done.sent) + len(done.superseded)} dead letter(s), then stopped with"
            f" {remaining} not replayed: {cause}"
        )
        self.done, self.remaining, self.cause = done, remaining, cause

    def as_json(self, error: str | None = None) -> dict[str, Any]:
        """The parts replayed, how many letters were not, and why (`error` in its place)."""
        return {
            **self.done.as_json(),
            "error": str(self.cause) if error is None else error,
            "not_replayed": self.remaining,
        }


async def replay_parts(
    sessions: async_sessionmaker[AsyncSession],
    ids: Sequence[int] | None,
    sender: Sender,
    actor: str,
    *,
    on_total: Callable[[int], None] | None = None,
    on_part: Callable[[int], None] | None = None,
) -> Replayed:
    """Replay the letters not yet replayed (of these ids, or all there are now), a part at a
    time, each part sent, marked and audited in a transaction of its own. Letters recorded
    while it runs wait for the next replay. Raises `PartlyReplayed` when a part fails."""
    parts = await _parts(sessions, ids)
    if on_total:
        on_total(sum(map(len, parts)))
    done = Replayed()
    for n, part in enumerate(parts):
        try:
            async with sessions() as session, session.begin():
                got = await replay(session, await pending(session, part), sender, actor)
        except Exception as exc:
            raise PartlyReplayed(done, sum(map(len, parts[n:])), exc) from exc
        done.sent += got.sent
        done.superseded.update(got.superseded)
        if on_part:
            on_part(len(part))
    return done


async def _parts(
    sessions: async_sessionmaker[AsyncSession], ids: Sequence[int] | None
) -> list[list[int]]:
    """The ids of the letters to replay, oldest first, cut in parts of `PART_LETTERS` letters
    and `PART_BYTES` of payload."""
    q = select(DeadLetter.id, func.coalesce(func.length(DeadLetter.payload), 0)).where(
        DeadLetter.replayed_at.is_(None)
    )
    sizes: list[tuple[int, int]] = []
    async with sessions() as session:
        if not ids:
            sizes.extend((i, n) for i, n in await session.execute(q.order_by(DeadLetter.id)))
        else:
            for chunk in locks.chunks(sorted(set(ids))):
                found = q.where(locks.one_of(session, DeadLetter.id, chunk, BigInteger))
                sizes.extend((i, n) for i, n in await session.execute(found))
    parts: list[list[int]] = []
    room = 0
    for letter, size in sorted(sizes):
        if not parts or len(parts[-1]) >= PART_LETTERS or size > room:
            parts.append([])
            room = PART_BYTES
        parts[-1].append(letter)
        room -= size
    return parts


async def _superseded(session: AsyncSession, letters: Sequence[DeadLetter]) -> dict[int, int]:
    """Stock levels older than the level published since for their SKU and channel."""
    levels: dict[int, StockLevelChanged] = {}
    for d in letters:
        if d.topic == topics.STOCK_LEVELS and d.payload:
            try:
                levels[d.id] = StockLevelChanged.model_validate_json(d.payload)
            except ValidationError:
                continue  # sent back as it is: its consumer dead-letters it again, saying why
    if not levels:
        return {}
    keys = {(lv.sku, lv.channel) for lv in levels.values()}
    t = ChannelLevel.__table__
    current: dict[tuple[str, str], int] = {}
    # By SKU, a part at a time (an outage's letters are more than a statement binds, and a
    # list of (SKU, channel) pairs is slow to plan); the channels are picked here.
    for part in locks.chunks(sorted({sku for sku, _ in keys})):
        q = select(t.c.sku, t.c.channel, t.c.version).where(locks.one_of(session, t.c.sku, part))
        current.update(
            ((r.sku, r.channel), r.version)
            for r in await session.execute(q)
            if (r.sku, r.channel) in keys
        )
    return {
        i: current[(lv.sku, lv.channel)]
        for i, lv in levels.items()
        if current.get((lv.sku, lv.channel), 0) > lv.version
    }


def poison_letter(
    record: Any, reason: str, consumer: str
) -> tuple[str, str | None, bytes, list[tuple[str, bytes]]]:
    """A consumed record its consumer cannot read, as a record of `hub.dlq.v1` (topic, key,
    value, headers): its own headers, then why and where from."""
    headers = [(k, v) for k, v in (record.headers or ()) if not k.startswith("dlq_")]
    headers += [
        ("dlq_error", reason[:2000].encode()),
        ("dlq_topic", record.topic.encode()),
        *origin_headers(record),
        ("dlq_consumer", consumer.encode()),
    ]
    key = record.key.decode("utf-8", "replace") if record.key else None
    return topics.DLQ, key, record.value or b"", headers


def origin_headers(record: Any) -> list[tuple[str, bytes]]:
    """Where in its topic a consumed record was read, and its time, as a letter's `dlq_*`
    headers: with its topic and payload, the letter's identity (`letter_row`). A record read
    again gives the same letter."""
    return [
        ("dlq_partition", str(record.partition).encode()),
        ("dlq_offset", str(record.offset).encode()),
        ("dlq_timestamp", str(record_ms(record)).encode()),
    ]


def letter_row(r: Any) -> dict[str, Any]:
    """The `dead_letters` row of a record of `hub.dlq.v1` (its `dlq_*` headers say where it
    came from and why; the other headers are the original message's, sent back on replay).

    A letter with no single origin (a push of coalesced stock levels) is keyed by its place in
    the dead-letter topic, as partition `-1 - p`, and its time there: never the origin of
    another letter. Values the table cannot hold are cut to fit, so that one odd record never
    stops the recorder."""
    headers = stored_headers(r.headers or ())
    dlq = {k: v for k, v in headers if k.startswith("dlq_")}
    try:
        partition, offset = int(dlq["dlq_partition"]), int(dlq["dlq_offset"])
        if not (0 <= partition < 2**31 and 0 <= offset < 2**63):
            raise ValueError("out of range")
    except (KeyError, ValueError):
        partition, offset = -1 - r.partition, r.offset  # no single origin: its place here
        stamp = record_ms(r)
    else:  # the origin's time; letters published before it was sent have none (-1)
        stamp = time_ms(dlq.get("dlq_timestamp"))
    return {
        "consumer": (dlq.get("dlq_consumer") or "unknown")[:64],
        "topic": (dlq.get("dlq_topic") or r.topic)[:128],
        "partition": partition,
        "offset": offset,
        "digest": payload_digest(r.value),
        "timestamp_ms": stamp,
        "key": r.key,
        "headers": [h for h in headers if not h[0].startswith("dlq_")],
        "payload": r.value,
        "error": dlq.get("dlq_error") or "no reason given",
    }


async def recorder_since(sessions: async_sessionmaker[AsyncSession]) -> int:
    """When the recorder first ran against this database (ms since the epoch, kept in
    `connector_cursors`): records older than that are not imported. A first deployment does not
    bring back letters handled long ago, and a database never sees another's."""
    now = str(int(now_utc().timestamp() * 1000))
    async with sessions() as session, session.begin():
        first = {"account": "hub", "what": "dead-letters", "cursor": now}
        # Two relays starting at once on a new database: the first one's time stands.
        await session.execute(
            insert(session, ConnectorCursor).on_conflict_do_nothing(
                index_elements=["account", "what"]
            ),
            [first],
        )
        row = await session.get(ConnectorCursor, ("hub", "dead-letters"))
        return int(row.cursor or 0) if row is not None else int(now)


async def record_letters(
    sessions: async_sessionmaker[AsyncSession], records: Iterable[Any], since_ms: int = 0
) -> int:
    """Write records of `hub.dlq.v1` (from `since_ms` on) to `dead_letters`; those recorded
    before (the core's own, or a record read again) are skipped. A row the database refuses
    anyway is logged and left in the topic rather than holding up every later letter. Returns
    how many rows were offered."""
    rows = [letter_row(r) for r in records if _since(r, since_ms)]
    if not rows:
        return 0
    try:
        await _insert(sessions, rows)
    except (IntegrityError, DataError):
        for row in rows:  # find the one the database refuses; keep the others
            try:
                await _insert(sessions, [row])
            except (IntegrityError, DataError) as exc:  # not a lost connection: that is raised
                log.error(
                    "dead letter not recorded",
                    consumer=row["consumer"],
                    topic=row["topic"],
                    partition=row["partition"],
                    offset=row["offset"],
                    error=str(exc)[:300],
                )
    return len(rows)


def _since(record: Any, since_ms: int) -> bool:
    stamp = getattr(record, "timestamp", None)
    return stamp is None or stamp < 0 or stamp >= since_ms  # no time given: recorded


async def _insert(sessions: async_sessionmaker[AsyncSession], rows: list[dict[str, Any]]) -> None:
    async with sessions() as session, session.begin():
        await session.execute(_new_letters(session), rows)


async def insert_letter(session: AsyncSession, row: dict[str, Any]) -> bool:
    """Store one letter (a `letter_row`'s fields) in the caller's transaction; False if it was
    stored before (its identity, `_ORIGIN`)."""
    result = await session.execute(_new_letters(session).values(row).returning(DeadLetter.id))
    return result.first() is not None


def _new_letters(session: AsyncSession) -> Any:
    return insert(session, DeadLetter).on_conflict_do_nothing(index_elements=_ORIGIN)
