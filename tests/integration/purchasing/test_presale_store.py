"""Presale through the core on both databases: with half of confirmed inbound open to presale,
orders beyond stock become backorders up to that share and no further; the level message shows
presale apart from stock; a receipt fills backorders oldest first; a short final receipt or a PO
the supplier withdraws releases the newest backorders first, with the reason."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from hub.core.batch import CoreProcessor
from hub.domain.allocation import PRESALE, Rule
from hub.purchasing import service
from hub.queries import invariant_problems, stock_view
from hub.store.models import Order, OutboxRow, Reservation, Stock
from schemas.envelope import Envelope, decode
from schemas.levels import StockLevelChanged
from schemas.purchasing import AckStatus, LineAckStatus, PurchaseOrderAcknowledged
from schemas.reservations import ReservationReleased, StockReserved
from schemas.stock import GoodsReceived
from tests.builders import cancel, place, records
from tests.integration.purchasing.harness import (
    T,
    _env,
    ack,
    asn,
    lines_of,
    receipt,
    replenish_step,
    seed_and_sell,
)

pytestmark = pytest.mark.integration

RULES = {"online": Rule(presale=True), "store": Rule()}


async def _po_with_presale(sessions, policy_for) -> str:
    """36 TEE ordered from acme-supply with 8 on hand; half of confirmed inbound may be presold."""
    await policy_for("TEE")
    await seed_and_sell(sessions, "TEE", 20, 12)
    await replenish_step(sessions, {"TEE"})
    (line,) = await lines_of(sessions, "TEE")
    async with sessions() as s, s.begin():
        await service.set_presale_share(s, "TEE", 0.5)
    return line.po_number


def _orders(n: int, start: int = 0) -> list[Envelope]:
    return [place(f"shop:{i:02d}", [("TEE", 1)]) for i in range(start, start + n)]


async def _rows(sessions) -> dict[str, tuple[int, int, int]]:
    async with sessions() as s:
        rows = (await s.execute(select(Stock).where(Stock.sku == "TEE"))).scalars()
        return {r.location: (r.on_hand, r.reserved, r.inbound) for r in rows}


async def _out(sessions, kind: type) -> list:
    async with sessions() as s:
        rows = (await s.execute(select(OutboxRow).order_by(OutboxRow.id))).scalars().all()
    found = []
    for r in rows:
        env = decode([(k, v.encode()) for k, v in r.headers], r.payload)
        if isinstance(env.data, kind):
            found.append(env.data)
    return found


async def _open(sessions, location: str) -> dict[str, int]:
    async with sessions() as s:
        q = select(Reservation).where(Reservation.location == location, Reservation.open > 0)
        return {r.order_key: r.open for r in (await s.execute(q)).scalars()}


async def _status(sessions) -> dict[str, str]:
    async with sessions() as s:
        return {o.order_key: o.status for o in (await s.execute(select(Order))).scalars()}


def _final(number: str, quantity: int, rid: str) -> Envelope:
    return _env(
        GoodsReceived(
            sku="TEE",
            quantity=quantity,
            unit_cost=8.50,  # type: ignore[arg-type]
            receipt_id=rid,
            po_number=number,
            final=True,
            received_at=T + timedelta(days=2),
        ),
        "receipt",
        rid,
    )


async def test_backorders_up_to_the_share_are_filled_oldest_first_and_the_rest_released_newest_first(
    sessions, policy_for
):
    number = await _po_with_presale(sessions, policy_for)
    core = CoreProcessor(sessions, RULES)
    await core.process(records(ack(number, "TEE", 30, LineAckStatus.CHANGED)))
    assert (await _rows(sessions))[PRESALE] == (15, 0, 0)  # ½ × 30 confirmed
    level = {m.channel: m for m in await _out(sessions, StockLevelChanged) if m.sku == "TEE"}
    assert (level["online"].available, level["online"].presale_available) == (8, 15)
    assert (level["store"].available, level["store"].presale_available) == (8, 0)

    await core.process(records(*_orders(24)))  # 8 from stock, 15 backorders, 1 too many
    status = await _status(sessions)
    assert [k for k, v in sorted(status.items()) if v == "rejected"] == ["shop:23"]
    assert set(await _open(sessions, PRESALE)) == {f"shop:{i:02d}" for i in range(8, 23)}
    reserved = {m.order_key: m.lines[0] for m in await _out(sessions, StockReserved)}
    assert not reserved["shop:07"].backorder and reserved["shop:08"].backorder
    assert reserved["shop:08"].location == PRESALE
    async with sessions() as s:
        view = await stock_view(s, "TEE", RULES)
    assert view["presale"] == {"limit": 15, "backorders": 15, "available": 0}
    assert (view["on_hand"], view["reserved"], view["inbound"]) == (8, 8, 30)
    assert view["channels"]["online"] == {"available": 0, "presale_available": 0}

    await core.process(records(receipt(number, "TEE", 10, rid="GRN-1")))
    rows = await _rows(sessions)
    assert rows["main"] == (18, 18, 20) and rows[PRESALE] == (10, 5, 0)
    assert len(await lines_of(sessions, "TEE")) == 1  # the line is still open: no new PO
    main = await _open(sessions, "main")
    assert {f"shop:{i:02d}" for i in range(8, 18)} <= set(main)  # the oldest ten, filled
    assert set(await _open(sessions, PRESALE)) == {f"shop:{i:02d}" for i in range(18, 23)}

    # Two more arrive and the supplier closes the line: 18 confirmed units will never come.
    await core.process(records(_final(number, 2, "GRN-2")))
    rows = await _rows(sessions)
    assert rows["main"][:2] == (20, 20) and rows[PRESALE] == (0, 0, 0)
    closed, reordered = sorted(await lines_of(sessions, "TEE"), key=lambda ln: ln.po_number)
    assert (closed.status, closed.open, closed.under_delivered) == ("closed_short", False, 18)
    # Nothing is left inbound of it, so the SKU is ordered again (not yet confirmed: no presale).
    assert rows["main"][2] == reordered.ordered and reordered.po_number != number
    released = [(m.order_key, m.reason.value) for m in await _out(sessions, ReservationReleased)]
    assert released == [
        ("shop:22", "inbound_lost"),
        ("shop:21", "inbound_lost"),
        ("shop:20", "inbound_lost"),
    ]
    status = await _status(sessions)
    assert [k for k, v in sorted(status.items()) if v == "bumped"] == [
        "shop:20",
        "shop:21",
        "shop:22",
    ]
    assert status["shop:19"] == "reserved"
    async with sessions() as s:
        assert await invariant_problems(s) == []

    # Everything again: nothing changes.
    before = (await _rows(sessions), await _status(sessions))
    await core.process(records(*_orders(24), _final(number, 2, "GRN-2")))
    assert (await _rows(sessions), await _status(sessions)) == before


async def test_a_po_withdrawn_after_its_ship_notice_releases_every_backorder_newest_first(
    sessions, policy_for
):
    number = await _po_with_presale(sessions, policy_for)
    core = CoreProcessor(sessions, RULES)
    await core.process(records(asn(number, "TEE", 20)))  # not acknowledged: shipped counts
    assert (await _rows(sessions))[PRESALE] == (10, 0, 0)
    await core.process(records(*_orders(12)))
    await core.process(records(*_orders(12, start=12), place("shop:99", [("TEE", 1)], "store")))
    status = await _status(sessions)
    assert sum(v == "reserved" for v in status.values()) == 18  # 8 from stock, 10 backorders
    assert status["shop:99"] == "rejected"  # a channel without presale gets no backorder

    withdrawn = _env(
        PurchaseOrderAcknowledged(
            po_number=number,
            supplier="acme-supply",
            acknowledgement_id="ACK-WITHDRAWN",
            acknowledged_at=T + timedelta(days=1),
            status=AckStatus.REJECTED,
            lines=(),
        ),
        "ack",
        "withdrawn",
    )
    await core.process(records(withdrawn))
    assert (await _rows(sessions))[PRESALE] == (0, 0, 0)
    released = [m.order_key for m in await _out(sessions, ReservationReleased)]
    assert released == [f"shop:{i:02d}" for i in range(17, 7, -1)]
    assert set(await _open(sessions, "main")) == {f"shop:{i:02d}" for i in range(8)}
    level = [m for m in await _out(sessions, StockLevelChanged) if m.channel == "online"][-1]
    assert (level.available, level.presale_available) == (0, 0)
    async with sessions() as s:
        assert await invariant_problems(s) == []


async def _two_backorders_then_share_0(sessions, policy_for) -> tuple[str, CoreProcessor]:
    """15 of 30 confirmed open to presale, 10 orders (8 from stock, 2 backorders), then the
    share set to 0; returns the PO's number and the core."""
    number = await _po_with_presale(sessions, policy_for)
    core = CoreProcessor(sessions, RULES)
    await core.process(records(ack(number, "TEE", 30, LineAckStatus.CHANGED)))
    await core.process(records(*_orders(10)))
    assert set(await _open(sessions, PRESALE)) == {"shop:08", "shop:09"}
    async with sessions() as s, s.begin():
        await service.set_presale_share(s, "TEE", 0)
    return number, core


async def test_a_share_set_to_0_takes_no_new_backorders_and_keeps_those_taken(sessions, policy_for):
    number, core = await _two_backorders_then_share_0(sessions, policy_for)
    await core.process(records(asn(number, "TEE", 20)))  # the next word on the inbound
    assert (await _rows(sessions))[PRESALE] == (2, 2, 0)  # the two taken, no room for more
    level = [m for m in await _out(sessions, StockLevelChanged) if m.channel == "online"][-1]
    assert (level.available, level.presale_available) == (0, 0)

    await core.process(records(*_orders(1, start=10)))
    assert (await _status(sessions))["shop:10"] == "rejected"
    assert set(await _open(sessions, PRESALE)) == {"shop:08", "shop:09"}
    assert await _out(sessions, ReservationReleased) == []

    # A backorder cancelled frees its unit, and still no new backorder is taken.
    await core.process(records(cancel("shop:08")))
    level = [m for m in await _out(sessions, StockLevelChanged) if m.channel == "online"][-1]
    assert level.presale_available == 0
    await core.process(records(*_orders(1, start=11)))
    assert (await _status(sessions))["shop:11"] == "rejected"
    assert set(await _open(sessions, PRESALE)) == {"shop:09"}
    async with sessions() as s:
        view = await stock_view(s, "TEE", RULES)
        assert view["presale"] == {"limit": 1, "backorders": 1, "available": 0}
        assert view["channels"]["online"]["presale_available"] == 0
        assert await invariant_problems(s) == []


async def test_a_share_set_to_0_refuses_the_next_backorder_at_once_and_says_so(
    sessions, policy_for
):
    number, core = await _two_backorders_then_share_0(sessions, policy_for)
    await core.process(records(*_orders(1, start=10)))  # no word on the inbound yet
    assert (await _status(sessions))["shop:10"] == "rejected"
    assert (await _rows(sessions))[PRESALE] == (2, 2, 0)
    level = [m for m in await _out(sessions, StockLevelChanged) if m.channel == "online"][-1]
    assert (level.available, level.presale_available) == (0, 0)
    async with sessions() as s:
        assert await invariant_problems(s) == []

    # Presale again: the limit is recomputed at the next word on the inbound, not before.
    async with sessions() as s, s.begin():
        await service.set_presale_share(s, "TEE", 0.5)
    await core.process(records(*_orders(1, start=11)))
    assert (await _status(sessions))["shop:11"] == "rejected"
    await core.process(records(asn(number, "TEE", 20)))
    assert (await _rows(sessions))[PRESALE] == (15, 2, 0)
    await core.process(records(*_orders(1, start=12)))
    assert (await _status(sessions))["shop:12"] == "reserved"
