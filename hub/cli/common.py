"""Helpers shared by the CLI modules: settings, engines, JSON output, async entry."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import typer
from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncSession

from hub.config import ConfigError, Settings
from hub.observe import configure_logging
from hub.store.db import make_engine, session_factory

T = TypeVar("T")
console = Console(stderr=True)
out = Console()


def settings() -> Settings:
    try:
        s = Settings()
        _ = s.hub
    except (ConfigError, ValueError) as exc:
        console.print(f"[red]configuration error:[/] {exc}")
        raise typer.Exit(2) from None
    configure_logging(s.log_format, s.log_level)
    return s


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, default=str, ensure_ascii=False, indent=2) + "\n")


def fail(message: str, code: int = 1) -> typer.Exit:
    console.print(f"[red]error:[/] {message}")
    return typer.Exit(code)


@asynccontextmanager
async def db_session(s: Settings) -> AsyncIterator[AsyncSession]:
    engine = make_engine(s.db_url)
    try:
        async with session_factory(engine)() as session:
            yield session
    finally:
        await engine.dispose()
