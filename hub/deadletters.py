"""Replaying dead letters: send them back to their topic with their original bytes, mark them
replayed and audit it, in one transaction (shared by `hub dlq replay` and `POST /api/dlq/replay`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit import record
from hub.store.models import DeadLetter
from schemas.base import now_utc


class Sender(Protocol):
    async def send_many(
        self, items: Sequence[tuple[str, str | None, bytes, list[tuple[str, bytes]]]]
    ) -> None: ...


async def pending(session: AsyncSession, ids: Sequence[int] | None) -> list[DeadLetter]:
    """Dead letters not yet replayed (of these ids, or all), oldest first, locked for update."""
    q = select(DeadLetter).where(DeadLetter.replayed_at.is_(None))
    if ids:
        q = q.where(DeadLetter.id.in_(ids))
    return list((await session.execute(q.order_by(DeadLetter.id).with_for_update())).scalars())


async def replay(
    session: AsyncSession, letters: list[DeadLetter], sender: Sender, actor: str
) -> list[int]:
    """Send `letters` (from `pending`, in the caller's transaction), mark them and audit it;
    the mark commits only after the broker acknowledged, so a failure replays nothing twice."""
    if not letters:
        return []
    await sender.send_many(
        [
            (
                d.topic,
                d.key.decode("utf-8", "replace") if d.key else None,
                d.payload or b"",
                [(k, v.encode()) for k, v in d.headers],
            )
            for d in letters
        ]
    )
    done = [d.id for d in letters]
    now = now_utc()
    await session.execute(update(DeadLetter).where(DeadLetter.id.in_(done)).values(replayed_at=now))
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
        after={"ids": done, "replayed_at": now.isoformat()},
    )
    return done
