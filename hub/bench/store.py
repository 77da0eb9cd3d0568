"""The benchmark's database: a fresh one per run, stock seeded in bulk, the raw UPDATE limit, and
the correctness checks (no oversell, every order decided once)."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import bindparam, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from hub.queries import invariant_problems
from hub.store.models import ChannelLevel, OutboxRow

BENCH_TABLE = "bench_stock"
SEED_CAUSE = "bench-seed"


def is_postgres(url: str) -> bool:
    return url.startswith("postgresql")


async def reset_database(url: str) -> None:
    """Drop and recreate the benchmark database (PostgreSQL) or delete its file (SQLite)."""
    u = make_url(url)
    if not is_postgres(url):
        if u.database and u.database != ":memory:":
            path = Path(u.database)
            path.parent.mkdir(parents=True, exist_ok=True)
            for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                p.unlink(missing_ok=True)
        return
    name = u.database
    if not name or not name.replace("_", "").isalnum():
        raise ValueError(f"benchmark database name {name!r}: use letters, digits and _")
    admin = create_async_engine(
        u.set(database="postgres"), isolation_level="AUTOCOMMIT", pool_size=1
    )
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await admin.dispose()


async def seed_stock(engine: AsyncEngine, prefix: str, n: int, on_hand: int) -> None:
    """`{prefix}-1 … {prefix}-n` at location main with `on_hand` units, journaled as a stocktake.

    PostgreSQL: one multi-row INSERT … SELECT generate_series per table; SQLite: a recursive CTE.
    """
    if n <= 0:
        return
    if engine.dialect.name == "postgresql":
        series = "SELECT g AS i FROM generate_series(1, :n) AS g"
        name = "(:prefix || '-' || s.i)"
    else:
        series = (
            "WITH RECURSIVE s0(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s0 WHERE i < :n) "
            "SELECT i FROM s0"
        )
        name = "(:prefix || '-' || s.i)"
    params = {"n": n, "prefix": prefix, "q": on_hand, "cause": SEED_CAUSE}
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO stock (sku, location, on_hand, reserved, inbound, safety_stock,"
                " avg_cost, updated_at) "
                f"SELECT {name}, 'main', :q, 0, 0, 0, 0, CURRENT_TIMESTAMP FROM ({series}) AS s"
            ),
            params,
        )
        await conn.execute(
            text(
                "INSERT INTO movements (sku, location, delta, kind, reason, ref, cause, at) "
                f"SELECT {name}, 'main', :q, 'stocktake', 'bench', 'bench-seed', :cause,"
                f" CURRENT_TIMESTAMP FROM ({series}) AS s"
            ),
            params,
        )


@dataclass
class UpdateLimit:
    updates: int
    seconds: float
    applied: int

    @property
    def per_s(self) -> float:
        return self.updates / self.seconds if self.seconds else 0.0


async def raw_update_limit(
    engine: AsyncEngine,
    skus: Sequence[str],
    *,
    per_tx: int = 1000,
    seed: int = 7,
) -> UpdateLimit:
    """The database's own limit: the conditional reservation UPDATE, `per_tx` per transaction,
    on a scratch copy of the stock columns (so the hub's journal stays true)."""
    async with engine.begin() as conn:
        await conn.execute(text(f"DROP TABLE IF EXISTS {BENCH_TABLE}"))
        await conn.execute(
            text(
                f"CREATE TABLE {BENCH_TABLE} (sku VARCHAR(128) NOT NULL, location VARCHAR(64)"
                " NOT NULL, on_hand INTEGER NOT NULL, reserved INTEGER NOT NULL,"
                " PRIMARY KEY (sku, location))"
            )
        )
        distinct = sorted(set(skus))
        for i in range(0, len(distinct), 5000):
            await conn.execute(
                text(
                    f"INSERT INTO {BENCH_TABLE} (sku, location, on_hand, reserved)"
                    " VALUES (:s, 'main', 1000000000, 0)"
                ),
                [{"s": s} for s in distinct[i : i + 5000]],
            )
    stmt = text(
        f"UPDATE {BENCH_TABLE} SET reserved = reserved + :q "
        "WHERE sku = :s AND location = 'main' AND on_hand - reserved >= :q"
    )
    order = list(skus)
    random.Random(seed).shuffle(order)
    applied = 0
    start = time.perf_counter()
    for i in range(0, len(order), per_tx):
        part = order[i : i + per_tx]
        async with engine.begin() as conn:
            res = await conn.execute(stmt, [{"s": s, "q": 1} for s in part])
            applied += max(res.rowcount or 0, 0)
    seconds = time.perf_counter() - start
    async with engine.begin() as conn:
        await conn.execute(text(f"DROP TABLE {BENCH_TABLE}"))
    return UpdateLimit(len(order), seconds, applied)


@dataclass
class Verdict:
    problems: list[str]
    oversell: int
    decided: int
    undecided: list[str]
    statuses: dict[str, int]


async def verify(sessions: async_sessionmaker[AsyncSession], keys: set[str]) -> Verdict:
    """Invariants of the whole store, and the decision of every order the benchmark sent."""
    async with sessions() as session:
        problems = await invariant_problems(session)
        oversell = (
            await session.execute(
                text(
                    "SELECT COALESCE(SUM(reserved - on_hand), 0) FROM stock WHERE reserved > on_hand"
                )
            )
        ).scalar_one()
        rows = (await session.execute(text("SELECT order_key, status FROM orders"))).all()
    statuses: dict[str, int] = {}
    decided: set[str] = set()
    for key, status in rows:
        if key in keys:
            statuses[status] = statuses.get(status, 0) + 1
            if status in ("reserved", "rejected"):
                decided.add(key)
    undecided = sorted(keys - decided)
    return Verdict(problems, int(oversell), len(decided), undecided[:20], statuses)


async def count_decided(sessions: async_sessionmaker[AsyncSession], prefix: str) -> int:
    async with sessions() as session:
        return int(
            (
                await session.execute(
                    text(
                        "SELECT COUNT(*) FROM orders WHERE order_key LIKE :p"
                        " AND status IN ('reserved', 'rejected')"
                    ),
                    {"p": prefix + "%"},
                )
            ).scalar_one()
        )


async def hot_stock(
    sessions: async_sessionmaker[AsyncSession], skus: Sequence[str]
) -> list[tuple[str, int, int]]:
    async with sessions() as session:
        rows = (
            await session.execute(
                text(
                    "SELECT sku, on_hand, reserved FROM stock"
                    " WHERE location = 'main' AND sku IN :skus"
                ).bindparams(bindparam("skus", expanding=True)),
                {"skus": list(skus)},
            )
        ).all()
    return sorted((s, int(h), int(r)) for s, h, r in rows)


async def levels_published(sessions: async_sessionmaker[AsyncSession]) -> int:
    """Stock levels the core has published so far: each (SKU, channel) row starts at version 1
    with its first publication and goes up by one with each next one, so the versions' sum
    counts them all, exactly and whatever the relay or a consumer has done with them since."""
    async with sessions() as s:
        n = await s.scalar(select(func.coalesce(func.sum(ChannelLevel.version), 0)))
    return int(n or 0)


async def outbox_backlog(sessions: async_sessionmaker[AsyncSession]) -> int:
    """Outbox rows not yet published (the relay's backlog, read from the store)."""
    async with sessions() as s:
        n = await s.scalar(
            select(func.count()).select_from(OutboxRow).where(OutboxRow.sent_at.is_(None))
        )
    return int(n or 0)


async def autovacuum_on(engine: AsyncEngine) -> bool | None:
    """The server's `autovacuum` setting (None on SQLite, which has none)."""
    if engine.dialect.name != "postgresql":
        return None
    async with engine.connect() as conn:
        return (await conn.execute(text("SHOW autovacuum"))).scalar_one() == "on"


async def vacuum_analyze(engine: AsyncEngine, *, throttled: bool = True) -> None:
    """VACUUM ANALYZE the hub's tables, what autovacuum does on a default PostgreSQL (or
    ANALYZE on SQLite): planner statistics that follow the tables' growth, dead rows reclaimed.
    `throttled` as autovacuum is by default (2 ms pause per 200 cost units): an unthrottled
    VACUUM takes the CPU from the run in bursts that autovacuum would spread out."""
    from hub.store.models import Base

    if engine.dialect.name != "postgresql":
        async with engine.begin() as conn:
            await conn.execute(text("ANALYZE"))
        return
    names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        if throttled:
            await conn.execute(text("SET vacuum_cost_delay = '2ms'"))
            await conn.execute(text("SET vacuum_cost_limit = 200"))
        await conn.execute(text(f"VACUUM (ANALYZE) {names}"))
