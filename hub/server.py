"""Run a Runtime with its HTTP app until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Generator

import structlog
import uvicorn

from hub.app import Runtime
from hub.config import ConfigError, Settings
from hub.heap import freeze_heap
from hub.web.app import create_app

log = structlog.get_logger("hub.server")


class HubServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # The hub installs its own handlers and stops every role, not only HTTP.
        yield


async def serve(
    settings: Settings,
    roles: set[str],
    *,
    consumers: int = 1,
    migrate: bool = True,
    only_account: str | None = None,
) -> None:
    runtime = Runtime(settings, consumers=consumers, only_account=only_account)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, runtime.stop_event.set)
    try:
        await runtime.start(roles, migrate=migrate)
    except ConfigError:
        # A bad account or setting is the operator's to fix: stop what started, then say which
        # (the command line exits 2 with the message).
        await runtime.stop()
        raise
    # What start-up loaded lives as long as the process (a full collection over the imports
    # alone takes 27 ms, paid again at every full collection otherwise).
    freeze_heap()
    server = HubServer(
        uvicorn.Config(
            create_app(runtime),
            host=settings.http_host,
            port=settings.http_port,
            log_level="warning",
            lifespan="off",
            access_log=False,
        )
    )
    http = asyncio.create_task(server.serve(), name="http")
    log.info(
        "hub running",
        roles=sorted(roles),
        http=f"{settings.http_host}:{settings.http_port}",
        broker=runtime.bootstrap,
        database=settings.db_url.split("@")[-1],
    )
    try:
        await asyncio.wait(
            [http, asyncio.ensure_future(runtime.stop_event.wait())],
            return_when=asyncio.FIRST_COMPLETED,
        )
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await http
        await runtime.stop()
        log.info("hub stopped")
