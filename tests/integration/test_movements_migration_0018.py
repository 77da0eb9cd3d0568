"""Migration 0018 indexes the journal's receipts by receipt line, on both databases."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect

from hub.store.migrate import current, downgrade, head, upgrade

pytestmark = pytest.mark.integration


async def _indexes(engine) -> set[str]:
    async with engine.connect() as conn:
        found = await conn.run_sync(lambda c: inspect(c).get_indexes("movements"))
    return {i["name"] for i in found}


async def test_the_receipt_index_comes_and_goes_with_the_migration(engine):
    assert "ix_movements_receipt" in await _indexes(engine)
    try:
        await downgrade(engine, "0017_dead_letter_time")
        assert "ix_movements_receipt" not in await _indexes(engine)
    finally:
        await upgrade(engine)  # back to head: the PostgreSQL database is shared by later tests
    assert await current(engine) == head()
    assert "ix_movements_receipt" in await _indexes(engine)
