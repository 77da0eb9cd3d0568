"""Migration 0015 adds the payload's digest to a dead letter's identity, and gives the letters
stored before it theirs, so that the same record read again after the upgrade is still one
letter."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from sqlalchemy import select

from hub.deadletters import record_letters
from hub.store.db import payload_digest
from hub.store.migrate import current, downgrade, head, upgrade
from hub.store.models import DeadLetter

pytestmark = pytest.mark.integration


async def test_letters_stored_before_get_their_digest(engine, sessions):
    async with sessions() as s, s.begin():
        for offset, payload in ((1, b"first"), (2, None)):
            s.add(
                DeadLetter(
                    consumer="hub-core",
                    topic="hub.orders.v1",
                    partition=0,
                    offset=offset,
                    headers=[],
                    payload=payload,
                    error="bug",
                )
            )
    try:
        await downgrade(engine, "0014_invoice_accepted_variance")
    finally:
        await upgrade(engine)  # back to head: the PostgreSQL database is shared by later tests
    assert await current(engine) == head()
    async with sessions() as s:
        rows = (await s.execute(select(DeadLetter).order_by(DeadLetter.offset))).scalars().all()
    assert [r.digest for r in rows] == [payload_digest(b"first"), payload_digest(b"")]
    # The first letter's record, published by the core before the upgrade and read after it.
    again = SimpleNamespace(
        topic="hub.dlq.v1",
        partition=0,
        offset=40,
        timestamp=None,
        key=None,
        value=b"first",
        headers=[
            ("dlq_error", b"bug"),
            ("dlq_topic", b"hub.orders.v1"),
            ("dlq_partition", b"0"),
            ("dlq_offset", b"1"),
            ("dlq_consumer", b"hub-core"),
        ],
    )
    await record_letters(sessions, [again])
    async with sessions() as s:
        assert len((await s.execute(select(DeadLetter.id))).all()) == 2
