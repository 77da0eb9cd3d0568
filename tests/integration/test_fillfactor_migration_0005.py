"""Migration 0005 leaves room in the core's update-heavy tables on PostgreSQL (fillfactor), takes
it back on downgrade, and is a revision step without effect on SQLite."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from hub.store.migrate import current, downgrade, head, upgrade

pytestmark = pytest.mark.integration
EXPECTED = {"stock": 80, "channel_levels": 80, "orders": 60, "reservations": 80}


async def _fillfactors(engine) -> dict[str, int | None]:
    if engine.dialect.name != "postgresql":
        return {}
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text("SELECT relname, reloptions FROM pg_class WHERE relname = ANY(:names)"),
                {"names": list(EXPECTED)},
            )
        ).all()
    out: dict[str, int | None] = {}
    for name, options in rows:
        found = [o.split("=", 1)[1] for o in options or () if o.startswith("fillfactor=")]
        out[name] = int(found[0]) if found else None
    return out


async def test_fillfactor_migration_round_trips(engine):
    postgres = engine.dialect.name == "postgresql"
    assert await _fillfactors(engine) == (EXPECTED if postgres else {})

    await downgrade(engine, "0004_dropship_presale")
    assert await current(engine) == "0004_dropship_presale"
    assert await _fillfactors(engine) == (dict.fromkeys(EXPECTED) if postgres else {})
    await upgrade(engine)  # back to head: the PostgreSQL database is shared by later tests
    assert await current(engine) == head()
    assert await _fillfactors(engine) == (EXPECTED if postgres else {})
