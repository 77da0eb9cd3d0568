"""`hub demo`: the end-to-end scenario on the embedded default, checked, with a summary.

Two channels sell one hot SKU with far more demand than stock, through two core consumers;
some orders are cancelled and fulfilled, a stocktake corrects a location, and every message is
delivered twice. The demo exits non-zero if any invariant broke.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

from hub.app import Runtime
from hub.cli.common import plain
from hub.config import AccountConfig, ChannelRule, HubConfig, Settings
from hub.kafka.embedded import free_port
from hub.queries import invariant_problems, stock_view
from hub.store.models import Order, Reservation
from schemas import topics
from schemas.base import now_utc
from schemas.envelope import Envelope, message_id
from schemas.orders import FulfilledLine, OrderCancelled, OrderFulfilled, OrderLine, OrderPlaced
from schemas.payments import PaymentCaptured
from schemas.stock import GoodsReceived, StockCounted

console = Console(stderr=True)

DEMO_CHANNELS = {
    "online": ChannelRule(share=1.0),
    "wholesale": ChannelRule(share=0.5, buffer=2),
}
DEMO_ACCOUNTS = {
    "acme": AccountConfig(connector="shopify", channel="online"),
    "b2b": AccountConfig(connector="woocommerce", channel="wholesale"),
}


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class Report:
    figures: dict[str, Any] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)

    def check(self, name: str, ok: bool, detail: str) -> None:
        self.checks.append(Check(name, ok, detail))

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


def demo_settings(
    base: Settings, run_id: str, accounts: dict[str, AccountConfig] | None = None
) -> Settings:
    s = base.model_copy(
        update={
            "database_url": base.database_url
            or f"sqlite+aiosqlite:///{base.var_dir / 'demo' / (run_id + '.db')}"
        }
    )
    s.__dict__["hub"] = HubConfig(channels=DEMO_CHANNELS, accounts=accounts or {})
    return s


def _order(account: str, channel: str, n: int, lines: list[tuple[str, int]]) -> Envelope:
    key = f"{account}:{n}"
    msg = OrderPlaced(
        order_key=key,
        account=account,
        channel=channel,
        platform_order_id=str(n),
        placed_at=now_utc(),
        currency="CNY",
        lines=tuple(OrderLine(sku=s, quantity=q, unit_price=Decimal("99.00")) for s, q in lines),
        total=Decimal("99.00") * sum(q for _, q in lines),
    )
    return Envelope(id=message_id(account, key, "placed"), source=f"demo/{account}", data=msg)


async def _wait_decided(rt: Runtime, keys: set[str], limit: float = 60) -> float:
    assert rt.sessions is not None
    start = time.monotonic()
    while time.monotonic() - start < limit:
        async with rt.sessions() as s:
            n = (
                await s.execute(
                    select(func.count())
                    .select_from(Order)
                    .where(Order.order_key.in_(keys), Order.status != "new")
                )
            ).scalar_one()
        if n >= len(keys):
            return time.monotonic() - start
        await asyncio.sleep(0.1)
    raise TimeoutError(f"orders not decided within {limit}s")


async def _settle(rt: Runtime, cause_count: int, limit: float = 30) -> None:
    """Wait until the core applied `cause_count` more messages and the outbox is drained."""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        backlog = (await rt.relay.backlog())[0] if rt.relay else 0
        if rt.totals.applied + rt.totals.duplicates >= cause_count and backlog == 0:
            return
        await asyncio.sleep(0.1)
    raise TimeoutError("core did not settle")


async def _levels_from_kafka(bootstrap: str, skus: set[str]) -> dict[tuple[str, str], int]:
    """Read hub.stock-levels.v1 from the start: the newest version per (SKU, channel)."""
    c = AIOKafkaConsumer(
        topics.STOCK_LEVELS,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=f"demo-check-{uuid.uuid4().hex[:6]}",
    )
    await c.start()
    latest: dict[tuple[str, str], tuple[int, int]] = {}
    try:
        idle = 0
        while idle < 3:
            batch = await c.getmany(timeout_ms=500)
            if not batch:
                idle += 1
                continue
            idle = 0
            for records in batch.values():
                for r in records:
                    d = json.loads(r.value)
                    if d["sku"] in skus:
                        k = (d["sku"], d["channel"])
                        if k not in latest or d["version"] > latest[k][0]:
                            latest[k] = (d["version"], d["available"])
    finally:
        await c.stop()
    return {k: v[1] for k, v in latest.items()}


async def scenario(rt: Runtime, run_id: str, report: Report) -> None:
    assert rt.publisher is not None and rt.sessions is not None
    hot, cold = f"HOT-{run_id}", f"COLD-{run_id}"
    seed = [
        Envelope(
            id=message_id("demo", run_id, "seed", sku),
            source="demo/warehouse",
            data=GoodsReceived(
                sku=sku,
                quantity=qty,
                unit_cost=cost,
                currency="CNY",
                receipt_id=f"seed-{run_id}-{sku}",
                received_at=now_utc(),
            ),
        )
        for sku, qty, cost in ((hot, 50, Decimal("61.37")), (cold, 500, Decimal("12.05")))
    ]
    await rt.publisher.publish(seed)
    await _settle(rt, 2)

    rng = random.Random(run_id)
    orders = []
    for n in range(200):
        account, channel = ("acme", "online") if n % 2 == 0 else ("b2b", "wholesale")
        lines = [(hot, 1)] + ([(cold, rng.randint(1, 3))] if n % 5 == 0 else [])
        orders.append(_order(account, channel, 1000 + n, lines))
    t0 = time.monotonic()
    # Two shops firing at once: concurrent publishes, each awaiting its acknowledgement.
    await asyncio.gather(*(rt.publisher.publish([o]) for o in orders))
    keys = {o.data.order_key for o in orders}  # type: ignore[attr-defined]
    await _wait_decided(rt, keys)
    report.figures["burst_seconds"] = round(time.monotonic() - t0, 3)

    async with rt.sessions() as s:
        accepted = [
            k
            for k, st in (
                await s.execute(
                    select(Order.order_key, Order.status).where(Order.order_key.in_(keys))
                )
            ).all()
            if st == "reserved"
        ]
    report.figures["orders_sent"] = len(orders)
    report.figures["accepted"] = len(accepted)
    report.figures["rejected"] = len(orders) - len(accepted)
    report.check(
        "exactly the stock is reserved",
        len(accepted) == 50,
        f"{len(accepted)} of 200 orders accepted for 50 units",
    )

    # Cancel 10 accepted orders, fulfil 20 others.
    accepted.sort()
    cancels = [
        Envelope(
            id=message_id(k, "cancelled"),
            source="demo",
            data=OrderCancelled(
                order_key=k, account=k.split(":")[0], channel=_channel(k), cancelled_at=now_utc()
            ),
        )
        for k in accepted[:10]
    ]
    fulfils = [
        Envelope(
            id=message_id(k, "fulfilled"),
            source="demo",
            data=OrderFulfilled(
                order_key=k,
                account=k.split(":")[0],
                channel=_channel(k),
                fulfilment_id=f"F{i}",
                fulfilled_at=now_utc(),
                lines=(FulfilledLine(sku=hot, quantity=1),),
            ),
        )
        for i, k in enumerate(accepted[10:30])
    ]
    payments = [
        Envelope(
            id=message_id(k, "paid"),
            source="demo",
            data=PaymentCaptured(
                order_key=k,
                account=k.split(":")[0],
                payment_id=f"P{i}",
                amount=Decimal("99.00"),
                currency="CNY",
                gateway="alipay",
                captured_at=now_utc(),
            ),
        )
        for i, k in enumerate(accepted[10:20])
    ]
    base = rt.totals.applied + rt.totals.duplicates
    await rt.publisher.publish(cancels + fulfils + payments)
    await _settle(rt, base + 40)

    # Late demand takes the released units, no more.
    late = [_order("acme", "online", 5000 + n, [(hot, 1)]) for n in range(15)]
    await rt.publisher.publish(late)
    late_keys = {o.data.order_key for o in late}  # type: ignore[attr-defined]
    await _wait_decided(rt, late_keys)
    async with rt.sessions() as s:
        late_ok = (
            await s.execute(
                select(func.count())
                .select_from(Order)
                .where(Order.order_key.in_(late_keys), Order.status == "reserved")
            )
        ).scalar_one()
    report.check(
        "released units are sold once",
        late_ok == 10,
        f"{late_ok} of 15 late orders took the 10 cancelled units",
    )

    # A stocktake finds 5 units missing: the newest reservations give way.
    count = Envelope(
        id=message_id("demo", run_id, "recount"),
        source="demo/warehouse",
        data=StockCounted(sku=hot, quantity=25, count_id=f"recount-{run_id}", counted_at=now_utc()),
    )
    base = rt.totals.applied + rt.totals.duplicates
    await rt.publisher.publish([count])
    await _settle(rt, base + 1)

    async with rt.sessions() as s:
        before = await stock_view(s, hot, rt.rules)
    # Every message again: duplicates must change nothing.
    base = rt.totals.applied + rt.totals.duplicates
    everything = seed + orders + cancels + fulfils + payments + late + [count]
    await rt.publisher.publish(everything)
    await _settle(rt, base + len(everything))
    async with rt.sessions() as s:
        after = await stock_view(s, hot, rt.rules)
        problems = await invariant_problems(s)
        open_units = (
            await s.execute(
                select(func.coalesce(func.sum(Reservation.open), 0)).where(Reservation.sku == hot)
            )
        ).scalar_one()
    report.check(
        "replaying every message changes nothing",
        before == after,
        f"state identical after a second delivery of all {len(everything)} messages"
        if before == after
        else f"{before} != {after}",
    )
    report.check(
        "no oversell, journal and reservations agree",
        not problems,
        "; ".join(problems)
        or "reserved ≤ on_hand, on_hand = Σ journal, reserved = Σ open reservations",
    )
    report.check(
        "reserved equals open reservations",
        after["reserved"] == open_units,
        f"reserved {after['reserved']} = Σ open {open_units}",
    )
    report.figures["final_on_hand"] = after["on_hand"]
    report.figures["final_reserved"] = after["reserved"]
    report.figures["available_per_channel"] = {
        k: v["available"] for k, v in after["channels"].items()
    }
    report.figures["oversell"] = max(0, after["reserved"] - after["on_hand"])

    levels = await _levels_from_kafka(rt.bootstrap, {hot})
    expected = {(hot, ch): v["available"] for ch, v in after["channels"].items()}
    report.check(
        "shops see the hub's available-to-sell",
        levels == expected,
        f"newest stock levels on Kafka {dict(sorted(levels.items()))} "
        f"{'=' if levels == expected else '!='} hub {dict(sorted(expected.items()))}",
    )


def counted_envelope(sku: str, qty: int, tag: str) -> Envelope:
    return Envelope(
        id=message_id("demo", tag, "count", sku),
        source="demo/warehouse",
        data=StockCounted(sku=sku, quantity=qty, count_id=f"{tag}-{sku}", counted_at=now_utc()),
    )


async def books_check(rt: Runtime, settings: Settings, path: Path, report: Report) -> None:
    """The books balance, match the warehouse and the orders, and reached the journal file."""
    from hub.finance.chart import chart_from_config
    from hub.finance.ledger import check_books
    from hub.finance.tables import VoucherRow

    assert rt.sessions is not None
    chart = chart_from_config(settings.hub)
    async with rt.sessions() as s:
        problems = await check_books(s, chart)
        vouchers = (await s.execute(select(func.count()).select_from(VoucherRow))).scalar_one()
    report.figures["vouchers"] = vouchers
    report.check(
        "books balance and match stock and receivables",
        not problems,
        "; ".join(f"{p.check} {p.subject}: {p.expected} != {p.actual}" for p in problems[:3])
        or f"{vouchers} vouchers; inventory = Σ on_hand × average cost; "
        "receivables = billed − paid",
    )

    def written() -> int:
        try:
            return path.read_text().count("voucher_id:")
        except FileNotFoundError:
            return 0

    start = time.monotonic()
    while written() < vouchers and time.monotonic() - start < 30:  # noqa: ASYNC110 - a file
        await asyncio.sleep(0.2)
    report.figures["books_file"] = str(path)
    report.check(
        "every voucher reached the Beancount journal once",
        written() == vouchers,
        f"{written()} transactions in {path.name} for {vouchers} vouchers",
    )


def _channel(order_key: str) -> str:
    return DEMO_ACCOUNTS[order_key.split(":")[0]].channel


def _print(report: Report) -> None:
    out = Console()
    t = Table(title="hub demo")
    t.add_column("figure")
    t.add_column("value", justify="right")
    for k, v in report.figures.items():
        t.add_row(plain(k), plain(v))
    out.print(t)
    for c in report.checks:
        out.print(f"{'[green]✓' if c.ok else '[red]✗'}[/] {plain(c.name)}: {plain(c.detail)}")
    out.print(
        "[bold green]every invariant held[/]" if report.ok else "[bold red]an invariant broke[/]"
    )


async def run_demo(base: Settings, *, keep_running: bool = False, as_json: bool = False) -> bool:
    from hub.demo_shops import Shops, cancel_before_create, flash_sale, served
    from hub.demo_supplier import restock_sku, supplier_flow
    from hub.web.app import create_app

    run_id = uuid.uuid4().hex[:8]
    shops = Shops.create()
    for sku in (f"HOT-{run_id}", f"COLD-{run_id}", restock_sku(run_id)):  # on sale in the shops
        shops.shopify.add_product(sku)
        shops.woo.add_product(sku)
    books_path = base.var_dir / "demo" / f"{run_id}.beancount"
    books = {"books": AccountConfig(connector="beancount", path=str(books_path))}
    settings = demo_settings(base, run_id, {**shops.accounts(), **books})
    rt = Runtime(settings, consumers=2)
    report = Report()
    try:
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(served(shops.shopify.app, shops.shopify_port))
            await stack.enter_async_context(served(shops.woo.app, shops.woo_port))
            stack.push_async_callback(rt.stop)
            await rt.start({"core", "relay", "gateway", "connectors"})
            port = settings.http_port if keep_running else free_port()
            gateway = await stack.enter_async_context(served(create_app(rt), port))
            console.print(
                f"demo {plain(run_id)}: broker {plain(rt.bootstrap)}, two core consumers, "
                f"database {plain(settings.db_url)}, gateway {plain(gateway)}"
            )
            await scenario(rt, run_id, report)
            await flash_sale(rt, shops, gateway, f"FLASH-{run_id}", report)
            await cancel_before_create(rt, shops, gateway, f"FLASH-{run_id}", report)
            await supplier_flow(rt, report, run_id)
            await books_check(rt, settings, books_path, report)
            if keep_running:
                console.print(f"scenario done; serving on {plain(gateway)} until Ctrl-C")
                await rt.stop_event.wait()
    except Exception as exc:  # the summary must say what broke
        report.check("scenario ran to the end", False, repr(exc))
    if as_json:
        print(
            json.dumps(
                {
                    "ok": report.ok,
                    "figures": report.figures,
                    "checks": [c.__dict__ for c in report.checks],
                },
                indent=2,
            )
        )
    else:
        _print(report)
    return report.ok
