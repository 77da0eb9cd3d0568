"""The dropship and presale migration round-trips on SQLite and PostgreSQL: its tables and the
presale column of the published levels go away on downgrade and come back on upgrade."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import inspect

from hub.purchasing import service
from hub.store.migrate import current, downgrade, upgrade

pytestmark = pytest.mark.integration
TABLES = {"dropship_items", "presale_items"}


async def _schema(engine) -> tuple[set[str], set[str]]:
    def look(c: Any) -> tuple[set[str], set[str]]:
        i = inspect(c)
        return set(i.get_table_names()), {col["name"] for col in i.get_columns("channel_levels")}

    async with engine.connect() as conn:
        return await conn.run_sync(look)


async def test_dropship_presale_migration_downgrades_and_upgrades_again(engine, sessions):
    tables, columns = await _schema(engine)
    assert tables >= TABLES and "presale_available" in columns

    await downgrade(engine, "0003_purchasing")
    assert await current(engine) == "0003_purchasing"
    tables, columns = await _schema(engine)
    assert not TABLES & tables and "presale_available" not in columns
    await upgrade(engine)  # back to head: the PostgreSQL database is shared by later tests
    tables, columns = await _schema(engine)
    assert tables >= TABLES and "presale_available" in columns
    async with sessions() as s, s.begin():  # the tables take rows again
        await service.set_dropship(s, "VASE", supplier="acme-supply")
        await service.set_presale_share(s, "VASE", 0.5)
