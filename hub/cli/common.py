"""Helpers shared by the CLI modules: settings, engines, JSON output, async entry."""

from __future__ import annotations

import asyncio
import functools
import getpass
import json
import os
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hub.access import AccessDenied, Role, Tokens, command_role
from hub.config import ConfigError, Settings
from hub.observe import configure_logging
from hub.store.db import make_engine, session_factory

T = TypeVar("T")
# No emoji codes: a SKU such as PACK:100:RED is printed as it is written.
console = Console(stderr=True, emoji=False)
out = Console(emoji=False)


def plain(value: object) -> str:
    """`value` as rich shows it literally: text from outside is never read as markup."""
    return escape(str(value))


def settings() -> Settings:
    try:
        s = Settings()
        _ = s.hub
    except (ConfigError, ValueError) as exc:
        console.print(f"[red]configuration error:[/] {plain(exc)}")
        raise typer.Exit(2) from None
    configure_logging(s.log_format, s.log_level)
    return s


def server_settings() -> Settings:
    """`settings()` for a process serving `/api/*`: every configured token must resolve now
    (an unset `env:` reference is a configuration error at start, not a failure per request)."""
    s = settings()
    try:
        Tokens.from_settings(s)
    except ConfigError as exc:
        console.print(f"[red]configuration error:[/] {plain(exc)}")
        raise typer.Exit(2) from None
    return s


def run_loop(coro: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run` on uvloop's event loop (libuv)."""
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        return run_loop(coro)
    except ConfigError as exc:
        console.print(f"[red]configuration error:[/] {plain(exc)}")
        raise typer.Exit(2) from None


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, default=str, ensure_ascii=False, indent=2) + "\n")


def fail(message: str, code: int = 1) -> typer.Exit:
    console.print(f"[red]error:[/] {plain(message)}")
    return typer.Exit(code)


@asynccontextmanager
async def db_sessions(s: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions of the configured database, for a command that opens several."""
    engine = make_engine(s.db_url)
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()


@asynccontextmanager
async def db_session(s: Settings) -> AsyncIterator[AsyncSession]:
    async with db_sessions(s) as sessions, sessions() as session:
        yield session


# --- access ---------------------------------------------------------------------------------------

ACCESS_DENIED = 3  # exit code: no, bad or insufficient HUB_TOKEN (2 stays "bad arguments")
_caller: ContextVar[str | None] = ContextVar("hub_caller", default=None)


def caller() -> str:
    """Who runs this command, for audit rows: the token's name when access control is
    configured, else the OS user."""
    return _caller.get() or getpass.getuser()


def guarded(path: str, command: Callable[..., T]) -> Callable[..., T]:
    """`command` checked against the role matrix (`hub.access.COMMANDS`) before it runs.

    With tokens configured the caller's token is `HUB_TOKEN` (unset: `HUB_ADMIN_TOKEN` when this
    environment holds it, as deployment jobs do) and an `actor` option is replaced by the
    token's name. Without tokens the command runs as before, as the OS user.
    """
    if getattr(command, "__hub_guarded__", False):
        return command

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        needed = command_role(path, fix=bool(kwargs.get("fix")))
        if needed is None:
            return command(*args, **kwargs)
        given = kwargs.get("actor")
        who = _authorise(path, needed) or (given if given not in (None, "cli") else None)
        who = who or getpass.getuser()
        if "actor" in kwargs:
            if given not in (None, "cli", who):
                console.print(
                    f"[yellow]--actor {plain(repr(given))} ignored: acting as {plain(repr(who))}[/]"
                )
            kwargs["actor"] = who
        _caller.set(who)
        return command(*args, **kwargs)

    wrapper.__hub_guarded__ = True  # type: ignore[attr-defined]
    return wrapper


def _authorise(path: str, needed: Role) -> str | None:
    """The token's name, or None when no token is configured; exits 3 when refused."""
    try:
        s = Settings()
        tokens = Tokens.from_settings(s, strict=False)
    except (ConfigError, ValueError) as exc:
        console.print(f"[red]configuration error:[/] {plain(exc)}")
        raise typer.Exit(2) from None
    if not tokens.configured:
        return None
    token = os.environ.get("HUB_TOKEN") or s.admin_token
    try:
        return tokens.authorise(token, needed).name
    except AccessDenied as exc:
        hint = "" if exc.authenticated else " (set HUB_TOKEN to your token)"
        raise fail(f"hub {path}: {exc}{hint}", ACCESS_DENIED) from None


def counted_progress(label: str, *, quiet: bool) -> Any:
    """A progress bar counting items done of a total on stderr (`label` before it); `quiet`
    (a --json run) shows nothing."""
    from rich.progress import BarColumn, Progress, TextColumn

    return Progress(
        TextColumn("[bold]" + plain(label).replace("{", "{{").replace("}", "}}")),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        console=console,
        transient=True,
        disable=quiet,
    )
