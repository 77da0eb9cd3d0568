"""Engine and sessions. SQLite takes its write lock at BEGIN so writers serialise cleanly."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, overload

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


@overload
def stored_utc(t: datetime) -> datetime: ...
@overload
def stored_utc(t: None) -> None: ...
def stored_utc(t: datetime | None) -> datetime | None:
    """A time read back from the store, as UTC: SQLite keeps no offset."""
    return t.replace(tzinfo=UTC) if t is not None and t.tzinfo is None else t


def payload_digest(payload: bytes | None) -> str:
    """A dead letter's payload digest (SHA-256, hex): part of its identity with its position."""
    return hashlib.sha256(payload or b"").hexdigest()


def stored_text(value: bytes | str | None, limit: int | None = None) -> str:
    """Outside bytes as text any text column holds: invalid UTF-8 and NUL (which PostgreSQL
    refuses in text) replaced by U+FFFD, cut to `limit` characters (a VARCHAR's length)."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = (value or "").replace("\x00", "\ufffd")
    return text[:limit] if limit is not None else text


def stored_headers(headers: Iterable[tuple[str, bytes | None]]) -> list[list[str]]:
    """A record's headers as `[name, value]` pairs of `stored_text`."""
    return [[stored_text(k), stored_text(v)] for k, v in headers]


def make_engine(url: str, *, pool_size: int = 5) -> AsyncEngine:
    """An engine for `url`; for SQLite: WAL, a busy timeout and `BEGIN IMMEDIATE` transactions."""
    if is_sqlite(url):
        db = make_url(url).database
        if db and db != ":memory:":
            Path(db).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30})
        _sqlite_pragmas(engine)
        return engine
    kwargs: dict[str, Any] = {
        "pool_size": pool_size,
        "max_overflow": pool_size,
        # Liveness is checked at checkout without a round trip (`_replace_closed`): SQLAlchemy's
        # pre-ping on asyncpg is a BEGIN, a statement and a ROLLBACK before every transaction.
        "pool_pre_ping": False,
    }
    if make_url(url).get_driver_name() == "asyncpg":
        # The driver prepares every statement, and after five runs PostgreSQL may keep a
        # generic plan made from the statistics of that moment. The core's lookups by a key
        # array planned while a table was nearly empty stayed sequential scans as it grew:
        # reservations by order key cost 466 ms a batch after 50,000 orders. Planned per
        # run, each statement is planned for the table's current size (a fraction of a ms).
        kwargs["connect_args"] = {"server_settings": {"plan_cache_mode": "force_custom_plan"}}
    engine = create_async_engine(url, **kwargs)
    _replace_closed(engine)
    return engine


def _replace_closed(engine: AsyncEngine) -> None:
    """Hand out no connection the server has closed. A restart or a terminated backend closes
    the socket; the driver sees it while the connection idles in the pool (the event loop reads
    every socket), and such a connection is replaced here at no cost. One that dies while in use
    fails its statement as it would after a ping; the caller's retry gets a new connection, and
    SQLAlchemy discards the pool's older ones on the first disconnect it sees."""

    @event.listens_for(engine.sync_engine.pool, "checkout")
    def _checkout(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        driver = getattr(dbapi_conn, "driver_connection", None)
        closed = getattr(driver, "is_closed", None)
        if closed is not None and closed():
            raise DisconnectionError("connection closed by the server")


def _sqlite_pragmas(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event emit BEGIN itself (pysqlite would defer it).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def session_factory(engine: AsyncEngine) -> async_sessionmaker[Any]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def server_warnings(engine: AsyncEngine) -> list[str]:
    """What in the database server's settings will hurt the hub over time (PostgreSQL): without
    autovacuum its tables keep every dead row and their planner statistics go stale, so the
    core's keyed lookups turn into scans as the tables grow."""
    if engine.dialect.name != "postgresql":
        return []
    from sqlalchemy import text

    async with engine.connect() as conn:
        autovacuum = (await conn.execute(text("SHOW autovacuum"))).scalar_one()
    if autovacuum != "on":
        return [
            "PostgreSQL autovacuum is off: the hub's tables will bloat and their statistics go "
            "stale; turn it on, or run VACUUM ANALYZE on a schedule"
        ]
    return []
