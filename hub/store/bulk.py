"""Bulk writes of the core's hot path: many rows of one table in one statement.

On PostgreSQL the rows travel as one JSON document (binary columns as one array each) and the
statement reads them back as a table with `json_to_recordset`: its text depends only on the table
and the columns, so the driver prepares it once per connection and the server never parses a
thousand-row VALUES list (SQLAlchemy's executemany renders one, with a bound parameter per value,
and builds each parameter in Python). Elsewhere (SQLite) the same calls use SQLAlchemy's
executemany.

Python-side column defaults (`mapped_column(default=…)`) are filled in here, as SQLAlchemy does
for its own inserts; server defaults are left to the server.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from pydantic_core import to_json
from sqlalchemy import LargeBinary, Table, bindparam, select, text, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

_PG = postgresql.dialect()
_QUOTE = _PG.identifier_preparer.quote


def is_postgres(session: AsyncSession) -> bool:
    return bool(session.bind and session.bind.dialect.name == "postgresql")


@functools.lru_cache(maxsize=256)
def _split(table: Table, cols: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The columns that travel in the JSON document, and the binary ones (one array each)."""
    binary = tuple(c for c in cols if isinstance(table.c[c].type, LargeBinary))
    return tuple(c for c in cols if c not in binary), binary


@functools.lru_cache(maxsize=256)
def _defaults(table: Table, given: tuple[str, ...]) -> dict[str, Any]:
    """The Python-side defaults of the columns not `given` (once per table and column set)."""
    out: dict[str, Any] = {}
    for col in table.columns:
        if col.name in given or col.default is None:
            continue
        if not col.default.is_scalar:
            raise ValueError(f"{table.name}.{col.name}: only scalar defaults are filled in")
        out[col.name] = col.default.arg  # type: ignore[attr-defined]
    return out


def _source(table: Table, cols: tuple[str, ...]) -> tuple[str, str]:
    """The rows as a table `u`, and the select list that reads it: the columns but the binary
    ones from one JSON document (`json_to_recordset`, each value read by its column type's
    input function), each binary column from its own BYTEA[] array, zipped by `ROWS FROM`."""
    doc, binary = _split(table, cols)
    calls = []
    if doc:
        defs = ", ".join(f"{_QUOTE(c)} {table.c[c].type.compile(dialect=_PG)}" for c in doc)
        calls.append(f"json_to_recordset(CAST(:doc AS JSON)) AS ({defs})")
    calls += [f"unnest(CAST(:b{i} AS BYTEA[]))" for i in range(len(binary))]
    names = ", ".join(_QUOTE(c) for c in (*doc, *binary))
    picks = ", ".join(f"u.{_QUOTE(c)}" for c in cols)
    return f"ROWS FROM ({', '.join(calls)}) AS u({names})", picks


@functools.lru_cache(maxsize=256)
def _insert_sql(
    table: Table, cols: tuple[str, ...], conflict: tuple[str, ...], returning: tuple[str, ...]
) -> Any:
    source, picks = _source(table, cols)
    sql = (
        f"INSERT INTO {_QUOTE(table.name)} ({', '.join(_QUOTE(c) for c in cols)}) "
        f"SELECT {picks} FROM {source}"
    )
    if conflict:
        sql += f" ON CONFLICT ({', '.join(_QUOTE(c) for c in conflict)}) DO NOTHING"
    if returning:
        sql += f" RETURNING {', '.join(_QUOTE(c) for c in returning)}"
    return text(sql)


@functools.lru_cache(maxsize=256)
def _update_sql(table: Table, keys: tuple[str, ...], values: tuple[str, ...]) -> Any:
    source, _ = _source(table, (*keys, *values))
    t = _QUOTE(table.name)
    sets = ", ".join(f"{_QUOTE(c)} = u.{_QUOTE(c)}" for c in values)
    where = " AND ".join(f"{t}.{_QUOTE(k)} = u.{_QUOTE(k)}" for k in keys)
    return text(f"UPDATE {t} SET {sets} FROM {source} WHERE {where}")


def _params(table: Table, cols: tuple[str, ...], rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The parameters of `_source`: the rows as one JSON document, pydantic-core's serializer
    writing Decimal and datetime as their exact text, and one array per binary column.

    One text parameter instead of one array per column: the driver checks every element of an
    array against the collection ABCs to find nested arrays (two checks a string; 45–55 ms of
    the core's CPU in a batch of 1,000 orders went to encoding its arrays), while the serializer
    writes a thousand rows in ~1 ms."""
    doc, binary = _split(table, cols)
    params: dict[str, Any] = {f"b{i}": [r[c] for r in rows] for i, c in enumerate(binary)}
    if doc:
        skip = {"__all__": set(binary)} if binary else None
        params["doc"] = to_json(rows, exclude=skip).decode()
    return params


def _complete(table: Table, rows: Sequence[dict[str, Any]]) -> tuple[tuple[str, ...], list[Any]]:
    cols = tuple(rows[0])
    extra = _defaults(table, cols)
    if extra:
        rows = [{**extra, **r} for r in rows]
        cols = (*cols, *extra)
    return cols, list(rows)


async def insert(
    session: AsyncSession,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    ignore_conflicts_on: Sequence[str] = (),
) -> None:
    """INSERT the rows (every row with the same keys); with `ignore_conflicts_on`, rows whose
    key exists already are skipped (ON CONFLICT DO NOTHING)."""
    if not rows:
        return
    if not is_postgres(session):
        stmt: Any = table.insert()
        if ignore_conflicts_on:
            stmt = sqlite.insert(table).on_conflict_do_nothing(
                index_elements=list(ignore_conflicts_on)
            )
        await session.execute(stmt, list(rows))
        return
    cols, full = _complete(table, rows)
    stmt = _insert_sql(table, cols, tuple(ignore_conflicts_on), ())
    await session.execute(stmt, _params(table, cols, full))


async def insert_new(
    session: AsyncSession, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str]
) -> set[tuple[Any, ...]]:
    """INSERT the rows whose `keys` are not in the table yet; returns the keys inserted.

    On PostgreSQL one `INSERT … ON CONFLICT DO NOTHING RETURNING`: a concurrent transaction
    inserting the same key makes this one wait for its outcome instead of failing. On SQLite
    (the whole database locked by the transaction) a SELECT of the existing keys, then the rest.
    """
    if not rows:
        return set()
    if is_postgres(session):
        cols, full = _complete(table, rows)
        stmt = _insert_sql(table, cols, tuple(keys), tuple(keys))
        result = await session.execute(stmt, _params(table, cols, full))
        return {tuple(r) for r in result.all()}
    wanted = sorted({tuple(r[k] for k in keys) for r in rows})
    key_cols = [table.c[k] for k in keys]
    existing: set[tuple[Any, ...]] = set()
    for i in range(0, len(wanted), 500):  # a key array is not a parameter on SQLite
        part = wanted[i : i + 500]
        where = (
            key_cols[0].in_([p[0] for p in part]) if len(keys) == 1 else tuple_(*key_cols).in_(part)
        )
        existing.update(tuple(r) for r in await session.execute(select(*key_cols).where(where)))
    new: list[dict[str, Any]] = []
    inserted: set[tuple[Any, ...]] = set()
    for r in rows:
        k = tuple(r[c] for c in keys)
        if k in existing or k in inserted:
            continue
        inserted.add(k)
        new.append(r)
    if new:
        await session.execute(table.insert(), new)
    return inserted


async def update(session: AsyncSession, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """UPDATE rows by primary key (every row with the same keys, each key at most once)."""
    if not rows:
        return
    keys = tuple(c.name for c in table.primary_key.columns)
    values = tuple(k for k in rows[0] if k not in keys)
    if len({tuple(r[k] for k in keys) for r in rows}) != len(rows):
        raise ValueError(f"update of {table.name}: a key appears twice")
    if not is_postgres(session):
        stmt = (
            table.update()
            .where(*(table.c[k] == bindparam(f"k_{k}") for k in keys))
            .values({v: bindparam(v) for v in values})
        )
        params = [{**{f"k_{k}": r[k] for k in keys}, **{v: r[v] for v in values}} for r in rows]
        await session.execute(stmt, params)
        return
    cols = (*keys, *values)
    await session.execute(_update_sql(table, keys, values), _params(table, cols, rows))
