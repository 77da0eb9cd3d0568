"""One signed Shopify webhook on the real broker: its correlation id is on the webhook's log line,
the reservation decision's, the stock push's and the voucher's, and a second order's id is on
none of them (nor the first order's on the second's)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog

from connectors.shopify.simulator import ShopifySimulator
from hub.app import Runtime
from hub.config import AccountConfig, ChannelRule, HubConfig, Settings
from hub.gateway import create_gateway
from hub.gateway.correlation import for_order
from hub.observe import configure_logging
from tests.builders import counted

Line = dict[str, Any]


@pytest.fixture
def json_logs() -> Iterator[None]:
    """JSON log lines on stderr (as off a terminal); the previous configuration afterwards."""
    saved = structlog.get_config()
    configure_logging("json", "INFO")
    try:
        yield
    finally:
        structlog.configure(**saved)
        structlog.contextvars.clear_contextvars()


class Logs:
    """The JSON lines written to stderr so far (capsys), kept across reads."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys
        self.lines: list[Line] = []

    def read(self) -> list[Line]:
        for raw in self.capsys.readouterr().err.splitlines():
            if raw.startswith("{"):
                try:
                    self.lines.append(json.loads(raw))
                except ValueError:
                    continue
        return self.lines

    def find(self, event: str, match: Callable[[Line], bool] = lambda _: True) -> list[Line]:
        return [ln for ln in self.read() if ln.get("event") == event and match(ln)]

    async def wait(
        self, event: str, match: Callable[[Line], bool], limit: float = 60.0
    ) -> list[Line]:
        start = time.monotonic()
        while time.monotonic() - start < limit:
            found = self.find(event, match)
            if found:
                return found
            await asyncio.sleep(0.1)
        seen = sorted({str(ln.get("event")) for ln in self.lines})
        raise AssertionError(f"no {event} line within {limit:.0f}s; events seen: {seen}")


def _pushes(sku: str, available: int) -> Callable[[Line], bool]:
    def match(line: Line) -> bool:
        return any(
            lv.get("sku") == sku and lv.get("available") == available
            for lv in line.get("levels") or ()
        )

    return match


async def _order_flow(
    logs: Logs,
    gateway: httpx.AsyncClient,
    shop: ShopifySimulator,
    order_id: int,
    sku: str,
    left: int,
) -> tuple[str, dict[str, Line]]:
    """Post the order's webhook; the correlation id answered, and the line of each step."""
    order = shop.make_order(order_id, [(sku, 2, "50.00")], decrement=False)
    headers, body = shop.webhook("orders/create", order)
    response = await gateway.post("/webhooks/shopify/acme", content=body, headers=headers)
    assert response.status_code == 200, response.text
    corr = response.headers["X-Correlation-ID"]
    key = f"acme:{order_id}"
    [accepted] = logs.find("gateway.accepted", lambda ln: key in ln.get("order_keys", []))
    [reserved] = await logs.wait("reservation.published", lambda ln: ln.get("order_key") == key)
    pushed = await logs.wait("stock_push.pushed", _pushes(sku, left))
    vouchers = await logs.wait("voucher.delivered", lambda ln: key in str(ln.get("cause_ref")))
    assert shop.stock(sku) == left
    return corr, {
        "webhook": accepted,
        "reservation": reserved,
        "push": pushed[-1],
        "voucher": vouchers[0],
    }


async def test_one_correlation_id_follows_an_order_from_webhook_to_voucher(
    kafka, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], json_logs: None
) -> None:
    run = uuid.uuid4().int % 10**9  # the PostgreSQL database is shared by the session's tests
    sku_a, sku_b, order_a, order_b = f"A-{run}", f"B-{run}", run * 10 + 1, run * 10 + 2
    key_a, key_b = f"acme:{order_a}", f"acme:{order_b}"
    shop = ShopifySimulator(webhook_secret="acme-webhook-secret", currency="CNY")
    shop.add_product(sku_a, 0)
    shop.add_product(sku_b, 0)
    books = tmp_path / "books.beancount"
    s = Settings(
        kafka_bootstrap=kafka.bootstrap,
        database_url=db_url,
        var_dir=tmp_path / "var",
        core_group=f"core-{uuid.uuid4().hex[:6]}",
        consumer_session_timeout_ms=6000,
        reconcile_interval_s=0,
    )
    s.__dict__["hub"] = HubConfig(
        channels={"online": ChannelRule()},
        accounts={
            "acme": AccountConfig(
                connector="shopify",
                channel="online",
                webhook_secret=shop.webhook_secret,
                api_url="https://acme.myshopify.com",
                api_token=shop.access_token,
                location_id=shop.location_id,
                rate_limit_per_second=1000,
                rate_limit_burst=1000,
            ),
            "books": AccountConfig(connector="beancount", path=str(books)),
        },
    )
    rt = Runtime(s, transports={"acme": httpx.ASGITransport(app=shop.app)})
    await rt.start({"core", "relay", "connectors"})
    logs = Logs(capsys)
    try:
        assert rt.publisher is not None
        await rt.publisher.publish([counted(sku_a, 10, str(run)), counted(sku_b, 10, str(run))])
        await logs.wait("stock_push.pushed", _pushes(sku_a, 10))
        await logs.wait("stock_push.pushed", _pushes(sku_b, 10))
        app = create_gateway(s.hub, rt.publisher)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://hub"
        ) as gateway:
            # One after the other, so that no batch line legitimately names both orders.
            first, lines1 = await _order_flow(logs, gateway, shop, order_a, sku_a, 8)
            second, lines2 = await _order_flow(logs, gateway, shop, order_b, sku_b, 8)
    finally:
        await rt.stop()

    # Derived from the platform's order: a redelivery (or a later webhook) keeps it.
    assert first == for_order(key_a)
    assert second == for_order(key_b)
    assert first != second
    for corr, other, other_key, lines in (
        (first, second, key_b, lines1),
        (second, first, key_a, lines2),
    ):
        for step, line in lines.items():
            assert line.get("correlation_id") == corr, (step, line)
            text = json.dumps(line)
            assert other not in text and other_key not in text, (step, line)
        assert lines["push"]["correlation_ids"] == [corr]
        assert lines["voucher"]["topic"] == "hub.vouchers.v1"
        assert lines["reservation"]["decision"] == "reserved"
    # No line of the whole run that names one order's id carries the other's.
    for line in logs.read():
        text = json.dumps(line)
        if line.get("correlation_id") == first:
            assert second not in text and key_b not in text, line
        if line.get("correlation_id") == second:
            assert first not in text and key_a not in text, line
