"""The hub says at start when the database server is set up to hurt it over time."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from hub.store.db import server_warnings

pytestmark = pytest.mark.integration


async def test_autovacuum_off_is_reported_and_on_is_not(engine) -> None:
    warnings = await server_warnings(engine)
    if engine.dialect.name != "postgresql":
        assert warnings == []
        return
    async with engine.connect() as conn:
        on = (await conn.execute(text("SHOW autovacuum"))).scalar_one() == "on"
    assert (warnings == []) is on
    assert all("autovacuum" in w for w in warnings)
