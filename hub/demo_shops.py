"""The shops part of `hub demo`: a flash sale on one SKU across a simulated Shopify and a simulated
WooCommerce shop, through signed webhooks to the gateway, with stock pushed back to both."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
from sqlalchemy import func, select

from connectors.shopify.simulator import ShopifySimulator
from connectors.woocommerce.simulator import WooCommerceSimulator
from hub.config import AccountConfig
from hub.kafka.embedded import free_port
from hub.server import HubServer
from hub.store.models import Order, Reservation


@contextlib.asynccontextmanager
async def served(app: Any, port: int) -> AsyncIterator[str]:
    """Serve an ASGI app on a loopback port for the duration of the block."""
    server = HubServer(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", access_log=False
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await task


@dataclass
class Shops:
    shopify: ShopifySimulator
    woo: WooCommerceSimulator
    shopify_port: int
    woo_port: int

    @classmethod
    def create(cls) -> Shops:
        return cls(
            ShopifySimulator(webhook_secret=secrets.token_hex(16), currency="CNY"),
            WooCommerceSimulator(webhook_secret=secrets.token_hex(16), currency="CNY"),
            free_port(),
            free_port(),
        )

    def accounts(self) -> dict[str, AccountConfig]:
        s, w = self.shopify, self.woo
        return {
            "acme": AccountConfig(
                connector="shopify",
                channel="online",
                webhook_secret=s.webhook_secret,
                api_url=f"http://127.0.0.1:{self.shopify_port}",
                api_token=s.access_token,
                location_id=s.location_id,
                rate_limit_per_second=50,
                rate_limit_burst=40,
            ),
            "corner": AccountConfig(
                connector="woocommerce",
                channel="wholesale",
                webhook_secret=w.webhook_secret,
                api_url=f"http://127.0.0.1:{self.woo_port}",
                consumer_key=w.consumer_key,
                consumer_secret=w.consumer_secret,
                rate_limit_per_second=50,
                rate_limit_burst=20,
            ),
        }


async def until(predicate: Callable[[], Awaitable[bool]], limit: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if await predicate():
            return time.monotonic() - start
        await asyncio.sleep(0.1)
    raise TimeoutError(f"not reached within {limit:.0f}s")


async def flash_sale(rt: Any, shops: Shops, gateway: str, sku: str, report: Any) -> None:
    """Both shops sell `sku` at once, far beyond the stock the hub holds."""
    from hub.demo import counted_envelope

    sim_s, sim_w = shops.shopify, shops.woo
    sim_s.add_product(sku, 0)
    sim_w.add_product(sku, 0)
    await rt.publisher.publish([counted_envelope(sku, 40, "flash")])

    async def shops_show(online: int, wholesale: int) -> bool:
        return sim_s.stock(sku) == online and sim_w.stock(sku) == wholesale

    took = await until(lambda: shops_show(40, 18), 30)
    report.check(
        "stock reaches both shops",
        True,
        f"online 40, wholesale 18 (share 0.5, buffer 2) pushed in {took:.1f}s",
    )

    url_s = f"{gateway}/webhooks/shopify/acme"
    url_w = f"{gateway}/webhooks/woocommerce/corner"
    statuses: list[int] = []
    async with httpx.AsyncClient(timeout=10) as client:
        sends = []
        for n in range(120):
            if n % 2 == 0:
                order = sim_s.make_order(70_000 + n, [(sku, 1, "129.00")])
                sends.append(sim_s.send_webhook(url_s, "orders/create", order, client=client))
            else:
                order = sim_w.make_order(80_000 + n, [(sku, 1, "129.00")])
                sends.append(sim_w.send_webhook(url_w, "order.created", order, client=client))
        t0 = time.monotonic()
        statuses = [r.status_code for r in await asyncio.gather(*sends)]
        report.figures["flash_webhooks"] = len(statuses)
        report.figures["flash_webhook_seconds"] = round(time.monotonic() - t0, 3)
        # One Shopify order delivered five times: one reservation.
        dup = sim_s.make_order(79_999, [(sku, 1, "129.00")])
        dup_status = [
            (
                await sim_s.send_webhook(
                    url_s, "orders/create", dup, client=client, event_id="evt-dup"
                )
            ).status_code
            for _ in range(5)
        ]
        # A delivery with a wrong signature: 401, nothing published.
        headers, body = sim_s.webhook("orders/create", dup, secret="wrong")
        forged = await client.post(url_s, content=body, headers=headers)
    report.check(
        "gateway accepts every signed webhook",
        set(statuses) == {200} and set(dup_status) == {200},
        f"{len(statuses) + 5} deliveries answered 200",
    )
    report.check(
        "a forged signature is refused", forged.status_code == 401, f"HTTP {forged.status_code}"
    )

    prefix_keys = (
        f"acme:{70_000 + n}" if n % 2 == 0 else f"corner:{80_000 + n}" for n in range(120)
    )
    keys = {*prefix_keys, "acme:79999"}

    async def decided() -> bool:
        async with rt.sessions() as s:
            n = (
                await s.execute(
                    select(func.count())
                    .select_from(Order)
                    .where(Order.order_key.in_(keys), Order.status != "new")
                )
            ).scalar_one()
        return bool(n == len(keys))

    await until(decided, 60)
    async with rt.sessions() as s:
        accepted = (
            await s.execute(
                select(func.count())
                .select_from(Order)
                .where(Order.order_key.in_(keys), Order.status == "reserved")
            )
        ).scalar_one()
    report.figures["flash_orders"] = len(keys)
    report.figures["flash_accepted"] = accepted
    report.check(
        "flash sale across two shops never oversells",
        accepted == 40,
        f"{accepted} of {len(keys)} shop orders reserved for 40 units "
        "(one of them delivered five times)",
    )

    t0 = time.monotonic()
    try:
        await until(lambda: shops_show(0, 0), 30)
        ok, detail = True, f"both shops at 0 within {time.monotonic() - t0:.1f}s of the burst"
    except TimeoutError:
        ok, detail = False, f"shopify {sim_s.stock(sku)}, woocommerce {sim_w.stock(sku)}"
    report.check("shops converge to the hub's available-to-sell", ok, detail)

    # Cancel five reserved Shopify orders: both shops see the stock again.
    async with rt.sessions() as s:
        reserved = sorted(
            k
            for (k,) in (
                await s.execute(
                    select(Order.order_key).where(
                        Order.order_key.like("acme:7%"), Order.status == "reserved"
                    )
                )
            ).all()
        )[:5]
    async with httpx.AsyncClient(timeout=10) as client:
        for key in reserved:
            order = sim_s.cancel_order(int(key.split(":")[1]))
            await sim_s.send_webhook(url_s, "orders/cancelled", order, client=client)
    try:
        await until(lambda: shops_show(5, 0), 30)
        ok, detail = True, "online 5, wholesale 0 (buffer 2 of floor(5 × 0.5))"
    except TimeoutError:
        ok, detail = False, f"shopify {sim_s.stock(sku)}, woocommerce {sim_w.stock(sku)}"
    report.check("cancelled orders give stock back to the shops", ok, detail)


async def cancel_before_create(rt: Any, shops: Shops, gateway: str, sku: str, report: Any) -> None:
    """A cancellation webhook that overtakes its order's creation leaves nothing reserved."""
    sim = shops.shopify
    url = f"{gateway}/webhooks/shopify/acme"
    order = sim.make_order(99_001, [(sku, 1, "129.00")], decrement=False)
    cancelled = sim.cancel_order(99_001, restock=False)
    async with httpx.AsyncClient(timeout=10) as client:
        first = await sim.send_webhook(url, "orders/cancelled", cancelled, client=client)
        second = await sim.send_webhook(url, "orders/create", order, client=client)

    async def settled() -> bool:
        async with rt.sessions() as s:
            row = (
                await s.execute(
                    select(Order.placed, Order.status).where(Order.order_key == "acme:99001")
                )
            ).first()
        return bool(row is not None and row.placed)

    await until(settled, 30)
    async with rt.sessions() as s:
        status = (
            await s.execute(select(Order.status).where(Order.order_key == "acme:99001"))
        ).scalar_one()
        held = (
            await s.execute(
                select(func.coalesce(func.sum(Reservation.open), 0)).where(
                    Reservation.order_key == "acme:99001"
                )
            )
        ).scalar_one()
    report.check(
        "cancel before create leaves no reservation",
        (first.status_code, second.status_code, status, held) == (200, 200, "cancelled", 0),
        f"webhooks {first.status_code}/{second.status_code}, order {status}, {held} unit(s) held",
    )
