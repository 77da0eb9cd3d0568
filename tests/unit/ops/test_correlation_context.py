"""Correlation ids in the log context: bound per record or per request, and gone afterwards."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from structlog.contextvars import bound_contextvars, get_contextvars, merge_contextvars
from structlog.testing import capture_logs

from connectors.base import StockPushResult, sign
from connectors.pushout import MAX_CAUSES, StockPushOut
from hub.bus import BrokerUnavailable
from hub.config import AccountConfig, HubConfig
from hub.core.consumer import batch_context
from hub.core.records import Record
from hub.gateway import create_gateway
from hub.gateway.correlation import for_order
from hub.observe import MAX_LOGGED_IDS, bound_record, bounded_ids
from hub.pushworker import level_causes
from hub.voucherworker import _dead_letter_headers
from schemas.envelope import Envelope
from schemas.finance import VoucherIssued, VoucherLine
from schemas.levels import StockLevelChanged

log = structlog.get_logger("test")
FIXTURES = Path(__file__).parents[2] / "fixtures"
SECRET = "acme-secret"


@pytest.fixture
def logs() -> Iterator[list[dict[str, Any]]]:
    structlog.contextvars.clear_contextvars()
    with capture_logs(processors=[merge_contextvars]) as entries:
        yield entries
    structlog.contextvars.clear_contextvars()


def headers(corr: str | None, mid: str, type_: str = "hub.order.placed.v1") -> list[Any]:
    h = [("ce_id", mid.encode()), ("ce_type", type_.encode()), ("ce_source", b"t")]
    if corr:
        h.append(("ce_correlationid", corr.encode()))
    return h


def record(offset: int, corr: str | None) -> Record:
    return Record("hub.orders.v1", 2, offset, b"k", b"{}", tuple(headers(corr, f"m{offset}")))


# -- per record --------------------------------------------------------------------------------


def test_a_record_binds_its_ids_and_place_then_restores_the_context(logs):
    with bound_contextvars(role="core"):
        with bound_record(headers("c-1", "m-1"), topic="hub.orders.v1", partition=3, offset=7):
            log.info("inside")
        log.info("after")
    assert logs[0] == {
        "event": "inside",
        "log_level": "info",
        "role": "core",
        "correlation_id": "c-1",
        "message_id": "m-1",
        "message_type": "hub.order.placed.v1",
        "topic": "hub.orders.v1",
        "partition": 3,
        "offset": 7,
    }
    assert logs[1] == {"event": "after", "log_level": "info", "role": "core"}
    assert get_contextvars() == {}


def test_consecutive_records_never_share_a_correlation_id(logs):
    for offset, corr in ((1, "c-1"), (2, None), (3, "c-3")):
        with bound_record(headers(corr, f"m{offset}"), offset=offset):
            log.info("handled")
    assert [e.get("correlation_id") for e in logs] == ["c-1", None, "c-3"]
    assert [e["message_id"] for e in logs] == ["m1", "m2", "m3"]


def test_a_record_without_ids_does_not_pass_for_the_enclosing_ones(logs):
    with bound_contextvars(correlation_id="outer", message_id="m-outer"):
        with bound_record(headers(None, "m-inner")[:0], offset=4):
            log.info("inner")
        log.info("outer")
    inner, outer = logs
    assert "correlation_id" not in inner and "message_id" not in inner and inner["offset"] == 4
    assert (outer["correlation_id"], outer["message_id"]) == ("outer", "m-outer")


def test_a_failing_record_does_not_leave_its_ids_behind(logs):
    with pytest.raises(RuntimeError), bound_record(headers("c-bad", "m-bad")):
        raise RuntimeError("boom")
    log.info("next")
    assert "correlation_id" not in logs[0]
    assert get_contextvars() == {}


def test_batch_lines_name_distinct_ids_bounded():
    ids = [f"c{i}" for i in range(MAX_LOGGED_IDS + 5)]
    out = bounded_ids([*ids, "c0", None, ""])
    assert out["correlation_ids"] == ids[:MAX_LOGGED_IDS]
    assert out["correlation_ids_more"] == 5
    assert bounded_ids(["a", "a"]) == {"correlation_ids": ["a"]}


# -- the core's batches -------------------------------------------------------------------------


def test_core_batch_of_one_binds_that_record_and_of_many_binds_the_list(logs):
    with batch_context([record(5, "c-5")]):
        log.info("one")
    with batch_context([record(6, "c-6"), record(7, None), record(8, "c-6"), record(9, "c-9")]):
        log.info("many")
    log.info("idle")
    one, many, idle = logs
    assert (one["correlation_id"], one["offset"], one["partition"]) == ("c-5", 5, 2)
    assert "correlation_id" not in many and many["correlation_ids"] == ["c-6", "c-9"]
    assert idle == {"event": "idle", "log_level": "info"}


async def test_concurrent_batches_keep_their_own_context(logs):
    async def handle(r: Record, pause: float) -> None:
        with batch_context([r]):
            await asyncio.sleep(pause)
            log.info("done", expect=r.offset)

    await asyncio.gather(handle(record(1, "c-1"), 0.02), handle(record(2, "c-2"), 0.0))
    assert {e["expect"]: e["correlation_id"] for e in logs} == {1: "c-1", 2: "c-2"}


# -- the gateway --------------------------------------------------------------------------------


def _order(order_id: int) -> bytes:
    order = json.loads((FIXTURES / "shopify" / "orders_create.json").read_text())
    order["id"] = order_id
    return json.dumps(order).encode()


def _signed(body: bytes, webhook_id: str = "wh-1", **extra: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Shopify-Hmac-Sha256": sign(SECRET, body),
        "X-Shopify-Topic": "orders/create",
        "X-Shopify-Webhook-Id": webhook_id,
        "X-Shopify-Event-Id": f"evt-{webhook_id}",
        **extra,
    }


class Publisher:
    def __init__(self) -> None:
        self.sent: list[Envelope] = []

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        # What the gateway's context holds while it publishes is the order's id.
        assert get_contextvars().get("correlation_id") == envelopes[0].correlation_id
        self.sent.extend(envelopes)


@pytest.fixture
async def gateway() -> Any:
    publisher = Publisher()
    config = HubConfig(accounts={"acme": AccountConfig(connector="shopify", webhook_secret=SECRET)})
    app = create_gateway(config, publisher, clock=lambda: datetime.now(UTC))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://hub"
    ) as client:
        yield client, publisher


async def test_webhook_gets_its_orders_id_on_envelopes_log_and_response(gateway, logs):
    client, publisher = gateway
    body = _order(1001)
    first = await client.post("/webhooks/shopify/acme", content=body, headers=_signed(body))
    again = await client.post(
        "/webhooks/shopify/acme", content=body, headers=_signed(body, "wh-redelivered")
    )
    assert first.status_code == again.status_code == 200
    corr = for_order("acme:1001")
    assert first.headers["X-Correlation-ID"] == again.headers["X-Correlation-ID"] == corr
    assert publisher.sent and {e.correlation_id for e in publisher.sent} == {corr}
    accepted = [e for e in logs if e["event"] == "gateway.accepted"]
    assert [e["correlation_id"] for e in accepted] == [corr, corr]
    assert accepted[0]["order_keys"] == ["acme:1001"]
    assert get_contextvars() == {}


async def test_requests_do_not_leak_ids_into_each_other(gateway, logs):
    client, _ = gateway
    one, two = _order(1), _order(2)
    answers = await asyncio.gather(
        client.post("/webhooks/shopify/acme", content=one, headers=_signed(one, "w1")),
        client.post("/webhooks/shopify/acme", content=two, headers=_signed(two, "w2")),
        client.post("/webhooks/shopify/acme", content=one, headers={"X-Shopify-Hmac-Sha256": "x"}),
    )
    assert [a.headers["X-Correlation-ID"] for a in answers[:2]] == [
        for_order("acme:1"),
        for_order("acme:2"),
    ]
    refused = answers[2].headers["X-Correlation-ID"]
    assert answers[2].status_code in (401, 415) and refused not in (
        for_order("acme:1"),
        for_order("acme:2"),
    )
    by_order = {e["order_keys"][0]: e["correlation_id"] for e in logs if "order_keys" in e}
    assert by_order == {"acme:1": for_order("acme:1"), "acme:2": for_order("acme:2")}


async def test_callers_ids_are_logged_beside_the_orders_id_and_malformed_ones_ignored(
    gateway, logs
):
    client, publisher = gateway
    body = _order(7)
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    answer = await client.post(
        "/webhooks/shopify/acme",
        content=body,
        headers=_signed(
            body,
            "w7",
            **{"X-Correlation-ID": "req-42", "traceparent": f"00-{trace}-00f067aa0ba902b7-01"},
        ),
    )
    assert answer.headers["X-Correlation-ID"] == for_order("acme:7")
    [line] = [e for e in logs if e["event"] == "gateway.accepted"]
    assert (line["request_id"], line["trace_id"]) == ("req-42", trace)
    assert all(e.correlation_id == for_order("acme:7") for e in publisher.sent)

    bad = await client.post(
        "/webhooks/shopify/acme",
        content=body,
        headers=_signed(body, "w8", **{"X-Correlation-ID": "a b;<script>", "traceparent": "00-zz"}),
    )
    assert bad.status_code == 200
    last = [e for e in logs if e["event"] == "gateway.accepted"][-1]
    assert "request_id" not in last and "trace_id" not in last


# -- stock pushes ---------------------------------------------------------------------------------


class Shop:
    def __init__(self) -> None:
        self.calls: list[dict[str, int]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def set_stock(self, levels: dict[str, int]) -> StockPushResult:
        await self.gate.wait()
        self.calls.append(dict(levels))
        return StockPushResult(updated=dict(levels))


def level(sku: str, version: int) -> StockLevelChanged:
    return StockLevelChanged(
        sku=sku,
        channel="online",
        available=version,
        on_hand=10,
        reserved=0,
        version=version,
        changed_at=datetime(2026, 11, 1, tzinfo=UTC),
    )


async def test_push_worker_never_takes_the_context_of_whoever_offered_first(logs):
    shop = Shop()
    out = StockPushOut({"acme": shop}, channels={"acme": "online"})  # type: ignore[dict-item]
    try:
        with bound_contextvars(correlation_id="first-offerer", offset=1):
            out.offer("acme", level("A", 1), ("c-A",))  # starts the account's worker
        await asyncio.wait_for(out.drain(), 5)
        out.offer("acme", level("B", 1))  # a level nobody's order changed
        await asyncio.wait_for(out.drain(), 5)
    finally:
        await out.stop()
    pushed = [e for e in logs if e["event"] == "stock_push.pushed"]
    assert [(p["correlation_ids"], p.get("correlation_id")) for p in pushed] == [
        (["c-A"], "c-A"),
        ([], None),
    ]
    assert all("offset" not in p for p in pushed)


async def test_coalesced_levels_push_with_the_ids_of_every_order_behind_them(logs):
    shop = Shop()
    shop.gate.clear()
    out = StockPushOut({"acme": shop}, channels={"acme": "online"})  # type: ignore[dict-item]
    try:
        out.offer("acme", level("A", 1), ("c-0",))
        await asyncio.sleep(0.01)  # version 1 is in flight; the next ones coalesce
        for v in range(2, 2 + MAX_CAUSES + 2):
            out.offer("acme", level("A", v), (f"c-{v}",))
        shop.gate.set()
        await asyncio.wait_for(out.drain(), 5)
    finally:
        await out.stop()
    first, second = [e for e in logs if e["event"] == "stock_push.pushed"]
    assert first["correlation_ids"] == ["c-0"]
    expected = [f"c-{v}" for v in range(2, 2 + MAX_CAUSES + 2)][-MAX_CAUSES:]
    assert second["correlation_ids"] == expected  # newest last, bounded
    assert second["levels"] == [{"sku": "A", "available": 13, "version": 13}]


def test_a_level_names_its_causes_from_its_headers():
    assert level_causes([("ce_causes", b"c1,c2"), ("ce_correlationid", b"c2")]) == ("c1", "c2")
    assert level_causes([("ce_correlationid", b"c9")]) == ("c9",)
    assert level_causes([("ce_id", b"x")]) == ()


def test_a_vouchers_dead_letter_keeps_its_correlation_id():
    voucher = VoucherIssued(
        voucher_id="v1",
        date=datetime(2026, 11, 1, tzinfo=UTC).date(),
        period="2026-11",
        cause_type="payment_captured",
        cause_ref="acme:1",
        currency="CNY",
        lines=(
            VoucherLine(account="1002", account_name="bank", debit=Decimal("1.00")),
            VoucherLine(account="1122", account_name="receivable", credit=Decimal("1.00")),
        ),
    )
    kept = _dead_letter_headers(
        [("ce_id", b"v1"), ("ce_correlationid", b"c-1"), ("x-other", b"?")],
        voucher,
        [("dlq_error", b"refused")],
    )
    assert kept == [("ce_id", b"v1"), ("ce_correlationid", b"c-1"), ("dlq_error", b"refused")]


async def test_an_answer_after_the_orders_id_is_known_carries_it_even_when_refused(gateway, logs):
    client, publisher = gateway

    async def broker_down(envelopes: Sequence[Envelope]) -> None:
        raise BrokerUnavailable("no broker")

    publisher.publish = broker_down
    body = _order(77)
    answer = await client.post("/webhooks/shopify/acme", content=body, headers=_signed(body))
    assert answer.status_code == 503
    assert answer.headers["X-Correlation-ID"] == for_order("acme:77")
    # Before the order is read, the request's own id: a fresh one per request.
    bad = [
        await client.post(
            "/webhooks/shopify/acme", content=body, headers={"X-Shopify-Hmac-Sha256": "x"}
        )
        for _ in range(2)
    ]
    ids = [a.headers["X-Correlation-ID"] for a in bad]
    assert len(set(ids)) == 2 and for_order("acme:77") not in ids
    assert get_contextvars() == {}
