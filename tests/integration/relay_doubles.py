"""What the relay tests share: a publisher that records what the relay sends, a relay running
in the background once it leads, and a listener for the announcements that wake it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from hub.bus import BrokerUnavailable
from hub.relay import OutboxRelay
from hub.store.outbox import CHANNEL


class RecordingPublisher:
    """Records each send's time (`calls`, `called`) and, when it succeeds, the records' keys;
    with `fail` every send raises `BrokerUnavailable`; `during` is awaited inside the next send,
    once (something the core does while a batch is being published)."""

    def __init__(self, *, fail: bool = False) -> None:
        self.calls: list[float] = []
        self.keys: list[str | None] = []
        self.called = asyncio.Event()
        self.fail = fail
        self.during: Callable[[], Any] | None = None

    async def send_many(self, items: list[Any]) -> None:
        self.calls.append(time.monotonic())
        self.called.set()
        if self.during is not None:
            during, self.during = self.during, None
            await during()
        if self.fail:
            raise BrokerUnavailable("down")
        self.keys += [key for _, key, _, _ in items]

    send_in_order = send_many  # the relay's way: the same records here


async def running(relay: OutboxRelay, stop: asyncio.Event) -> asyncio.Task[None]:
    """The relay's `run` in a task, once it leads (the lock is PostgreSQL's; elsewhere it leads
    at once) and its first, empty drain is over."""
    task = asyncio.create_task(relay.run(stop))
    for _ in range(300):
        if relay._leader_conn is not None or relay.engine.dialect.name != "postgresql":
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)
    return task


@contextlib.asynccontextmanager
async def heard(engine: AsyncEngine) -> AsyncIterator[list[str]]:
    """The channels of the notifications a session of its own hears meanwhile."""
    conn = await engine.connect()
    got: list[str] = []
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None
    await driver.add_listener(CHANNEL, lambda *args: got.append(args[2]))
    try:
        yield got
        for _ in range(50):  # until the first arrives, then a little longer for a second
            if got:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)
    finally:
        await conn.invalidate()  # not back to the pool with a listener on it
