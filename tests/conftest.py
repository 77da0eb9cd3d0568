"""Fixtures shared by every tier: the broker and the databases.

Where a Docker engine answers, integration tests run on Apache Kafka and PostgreSQL containers
(testcontainers); otherwise on the embedded Kafka-compatible broker (Tansu) and the local
PostgreSQL at 127.0.0.1:5432. The report header says which.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from hub.kafka.embedded import EmbeddedBroker
from hub.observe import _StderrLogger
from hub.store.db import make_engine, session_factory
from hub.store.migrate import upgrade

LOCAL_PG = os.environ.get("HUB_TEST_POSTGRES", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


def _docker_available() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=2)
        client.ping()
        return True
    except Exception:
        return False


DOCKER = _docker_available()

# Log lines go to stderr, as `hub` configures them, whatever `sys.stderr` is at the time: a role
# running in the test's loop while a CLI command runs in a thread (CliRunner swaps the streams)
# then never writes into the command's JSON on stdout. Tests that want other logging configure
# it themselves and put this back.
structlog.configure(logger_factory=_StderrLogger)


def pytest_report_header(config: pytest.Config) -> list[str]:
    if DOCKER:
        return ["backends: Apache Kafka and PostgreSQL containers (testcontainers)"]
    return [
        "backends: no Docker engine; using the embedded Kafka-compatible broker (Tansu) "
        "and the local PostgreSQL at 127.0.0.1:5432 instead of testcontainers"
    ]


# -- Kafka ---------------------------------------------------------------------------------------


@dataclass
class KafkaUnderTest:
    bootstrap: str
    embedded: EmbeddedBroker | None


@pytest.fixture(scope="session")
def _kafka_container() -> Iterator[str | None]:
    if not DOCKER:
        yield None
        return
    from testcontainers.kafka import KafkaContainer

    with KafkaContainer("apache/kafka:3.9.0").with_kraft() as kafka:
        yield kafka.get_bootstrap_server()


@pytest.fixture
def kafka(_kafka_container: str | None, tmp_path: Path) -> Iterator[KafkaUnderTest]:
    """A broker for one test: a fresh embedded one (cheap: ~0.1 s), or the shared container."""
    if _kafka_container:
        yield KafkaUnderTest(_kafka_container, None)
        return
    broker = EmbeddedBroker.start(log=tmp_path / "broker.log")
    try:
        yield KafkaUnderTest(broker.bootstrap, broker)
    finally:
        broker.stop()


# -- Databases -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """A PostgreSQL database of this test run (created and dropped here)."""
    if DOCKER:
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:15", driver="asyncpg") as pg:
            yield pg.get_connection_url()
        return
    name = f"hub_test_{uuid.uuid4().hex[:8]}"

    async def admin(sql: str) -> None:
        engine = make_engine(LOCAL_PG)
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(sql))
        await engine.dispose()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield LOCAL_PG.rsplit("/", 1)[0] + f"/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


TABLES_TO_CLEAR: list[str] | None = None


async def _clear(engine: AsyncEngine) -> None:
    from hub.store.models import Base

    async with engine.begin() as conn:
        names = ", ".join(t.name for t in Base.metadata.sorted_tables)
        await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


_pg_migrated: set[str] = set()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every store test runs on both databases."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}"
    return str(request.getfixturevalue("pg_server_url"))


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    eng = make_engine(db_url)
    if db_url.startswith("postgresql"):
        if db_url not in _pg_migrated:
            await upgrade(eng)
            _pg_migrated.add(db_url)
        await _clear(eng)
    else:
        await upgrade(eng)
    yield eng
    await eng.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(engine)


@pytest.fixture
def hub_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    """Settings for a hub under test: its own var dir, no config file from the working dir."""
    monkeypatch.setenv("HUB_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("HUB_CONFIG", raising=False)
    monkeypatch.delenv("HUB_KAFKA_BOOTSTRAP", raising=False)
    monkeypatch.delenv("HUB_DATABASE_URL", raising=False)
    return {"var": tmp_path / "var"}
