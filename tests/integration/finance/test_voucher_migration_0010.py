"""Migration 0010 widens a voucher's reference to 400 characters on PostgreSQL, and a downgrade
cuts longer ones to the 200 the column held; on SQLite, which does not enforce a VARCHAR's
length, both are revision steps that leave the rows as they are."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from hub.store.migrate import current, downgrade, head, upgrade

pytestmark = pytest.mark.integration
_LENGTH = (
    "SELECT character_maximum_length FROM information_schema.columns"
    " WHERE table_name = 'vouchers' AND column_name = 'cause_ref'"
)
_INSERT = (
    "INSERT INTO vouchers (voucher_id, date, period, cause_type, cause_ref, currency, memo, lines)"
    " VALUES ('v1', '2026-12-07', '2026-12', 'goods_received', :ref, 'CNY', '', '[]')"
)


async def test_a_reference_of_322_characters_is_stored_and_cut_on_downgrade(engine):
    postgres = engine.dialect.name == "postgresql"
    ref = f"{'R' * 128}:{'S' * 128}:{'x' * 64}"
    async with engine.begin() as conn:
        await conn.execute(text(_INSERT), {"ref": ref})
    try:
        if postgres:
            async with engine.connect() as conn:
                assert (await conn.execute(text(_LENGTH))).scalar() == 400
        await downgrade(engine, "0009_receipt_location")
        assert await current(engine) == "0009_receipt_location"
        async with engine.connect() as conn:
            if postgres:
                assert (await conn.execute(text(_LENGTH))).scalar() == 200
            stored = (await conn.execute(text("SELECT cause_ref FROM vouchers"))).scalar()
        assert stored == (ref[:200] if postgres else ref)  # SQLite's column was never cut
    finally:
        await upgrade(engine)  # back to head: the PostgreSQL database is shared by later tests
    assert await current(engine) == head()
