"""Signed Shopify deliveries posted to the gateway over loopback, from a child process so the
sender does not share the hub's event loop.

`prepare` runs in that child first and builds every delivery with the Shopify simulator, so the
parent can read each part's CPU time around `drive` alone (which adds only opening its
connections to the sending); `drive` then posts them either as fast as `concurrency` connections
allow (`max`) or on a fixed schedule (`paced`, latency counted from the scheduled instant, so a
stalled server cannot hide its queueing).

Counting from the scheduled instant also counts the sender's own stalls, so the sender keeps its
garbage collector out of the timed window: `prepare` freezes everything it built, collection is
off from the first send, and what a phase left behind is collected by the next `prepare`,
outside any window (a full collection over the prepared deliveries took 130–185 ms here, and
one at the end of a paced phase was the whole of its p99).
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
from dataclasses import dataclass

import httpx

from connectors.shopify.simulator import ShopifySimulator
from hub.heap import freeze_heap


@dataclass
class Plan:
    url: str
    secret: str
    skus: list[str]
    first_order_id: int
    count: int
    mode: str  # "max" | "paced"
    seconds: float
    concurrency: int = 64
    rate: float = 0.0
    client: str = "raw"  # "raw" (HTTP/1.1 keep-alive over asyncio streams) | "httpx"


@dataclass
class Sample:
    index: int
    sent_at: float  # wall clock (time.time) of the intended send
    latency: float  # seconds
    status: int


def deliveries(plan: Plan) -> list[tuple[dict[str, str], bytes]]:
    # The books are kept in CNY: a foreign-currency payment would only make finance warn.
    sim = ShopifySimulator(webhook_secret=plan.secret, currency="CNY")
    out = []
    for i in range(plan.count):
        order = sim.make_order(
            plan.first_order_id + i, [(plan.skus[i % len(plan.skus)], 1, "9.90")]
        )
        headers, body = sim.webhook("orders/create", order)
        headers["Content-Type"] = "application/json"
        out.append((headers, body))
    sim.orders.clear()
    return out


# In the child: deliveries built by `prepare`, by (first order id, count), until `drive` takes them.
_prepared: dict[tuple[int, int], list[tuple[dict[str, str], bytes]]] = {}


def prepare(plan: Plan) -> int:
    """In the child, before anything is timed: collect what the last phase left, build the plan's
    deliveries and freeze them. Returns the child's pid (whose CPU time the parent reads)."""
    gc.enable()
    gc.unfreeze()  # the last phase's deliveries too; freeze_heap's collection takes them
    _prepared[(plan.first_order_id, plan.count)] = deliveries(plan)
    freeze_heap()
    return os.getpid()


class RawPool:
    """HTTP/1.1 keep-alive connections over asyncio streams, one request in flight on each.

    The same signed bytes as httpx would send; httpx's own overhead per request was several
    times the gateway's on this machine, so by default the sender is this lean client."""

    def __init__(self, url: str, size: int) -> None:
        u = httpx.URL(url)
        self.host, self.port, self.path = u.host, u.port or 80, u.raw_path
        self.free: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
            asyncio.Queue()
        )
        self.size = size

    async def open(self) -> None:
        for _ in range(self.size):
            self.free.put_nowait(await asyncio.open_connection(self.host, self.port))

    async def post(self, headers: dict[str, str], body: bytes) -> int:
        reader, writer = await self.free.get()
        try:
            head = [b"POST " + self.path + b" HTTP/1.1", f"Host: {self.host}".encode()]
            head += [f"{k}: {v}".encode() for k, v in headers.items()]
            head.append(f"Content-Length: {len(body)}".encode())
            writer.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
            await writer.drain()
            raw = await reader.readuntil(b"\r\n\r\n")
            lines = raw.split(b"\r\n")
            status = int(lines[0].split()[1])
            length = next(
                (
                    int(v)
                    for k, _, v in (ln.partition(b":") for ln in lines[1:])
                    if k.strip().lower() == b"content-length"
                ),
                0,
            )
            await reader.readexactly(length)
        except (OSError, ValueError, asyncio.IncompleteReadError):
            writer.close()
            reader, writer = await asyncio.open_connection(self.host, self.port)
            status = 0
        self.free.put_nowait((reader, writer))
        return status

    async def close(self) -> None:
        while not self.free.empty():
            _, writer = self.free.get_nowait()
            writer.close()


def pause_collector() -> None:
    """No garbage collection from here on: what exists now is frozen (never scanned again; after
    `prepare`, only what was made since is collected first). The collector stays off after the
    phase too, until the next `prepare` collects what it left, so no collection falls in the
    window the parent measures."""
    freeze_heap()
    gc.disable()


async def _drive(plan: Plan) -> list[Sample]:
    # Built by `prepare`: building them here would count in the window the parent measures.
    todo = _prepared.pop((plan.first_order_id, plan.count))
    samples: list[Sample] = []
    limits = httpx.Limits(
        max_connections=plan.concurrency, max_keepalive_connections=plan.concurrency
    )
    raw = RawPool(plan.url, plan.concurrency) if plan.client == "raw" else None
    if raw is not None:
        await raw.open()
    async with httpx.AsyncClient(limits=limits, timeout=30.0) as client:
        # Warm the connections so the first second does not measure TCP handshakes.
        await asyncio.gather(
            *(client.get(plan.url.split("/webhooks")[0] + "/healthz") for _ in range(4))
        )

        async def post(i: int, intended: float, wall: float) -> None:
            headers, body = todo[i]
            if raw is not None:
                status = await raw.post(headers, body)
            else:
                try:
                    r = await client.post(plan.url, content=body, headers=headers)
                    status = r.status_code
                except httpx.HTTPError:
                    status = 0
            samples.append(Sample(i, wall, time.perf_counter() - intended, status))

        pause_collector()
        start = time.perf_counter()
        wall0 = time.time()
        deadline = start + plan.seconds
        if plan.mode == "max":
            it = iter(range(len(todo)))

            async def worker() -> None:
                for i in it:
                    if time.perf_counter() > deadline:
                        return
                    t = time.perf_counter()
                    await post(i, t, wall0 + (t - start))

            await asyncio.gather(*(worker() for _ in range(plan.concurrency)))
        else:
            gate = asyncio.Semaphore(plan.concurrency)
            tasks = []

            async def bounded(i: int, intended: float) -> None:
                async with gate:
                    await post(i, intended, wall0 + (intended - start))

            for i in range(len(todo)):
                intended = start + i / plan.rate
                if intended > deadline:
                    break
                delay = intended - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(bounded(i, intended)))
            await asyncio.gather(*tasks)
    if raw is not None:
        await raw.close()
    return samples


def drive(plan: Plan) -> list[Sample]:
    """Entry point in the child process (on uvloop, as the hub's processes run), after
    `prepare` for the same plan."""
    from hub.cli.common import run_loop

    return run_loop(_drive(plan))
