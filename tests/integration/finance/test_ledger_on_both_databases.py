"""The ledger on SQLite and PostgreSQL: posting is idempotent, the trial balance sums to zero, and
`check_books` finds every disagreement between the books, the warehouse and the orders."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from hub.cli import books
from hub.finance import costing, ledger, rules
from hub.finance.chart import CN_SMALL_BUSINESS
from hub.finance.tables import OrderFinance, VoucherLineRow
from hub.store.db import make_engine, session_factory
from hub.store.migrate import current, downgrade, head, upgrade
from hub.store.models import Stock

pytestmark = pytest.mark.integration
CHART = CN_SMALL_BUSINESS
AT = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
D = Decimal


async def _scenario(engine: AsyncEngine) -> list[bool]:
    """Receive 3 TEE at 10.00, sell 1 for 100 + 13 VAT, get paid 113, count 1 missing."""
    results = []
    avg = costing.receive(0, D(0), 3, D("10.00"))
    receipt = rules.goods_received(
        CHART,
        receipt_id="GRN-1",
        sku="TEE",
        location="main",
        at=AT,
        currency="CNY",
        quantity=3,
        unit_cost=D("10.00"),
        on_hand=0,
        avg_cost=D(0),
    )
    sale = rules.sale_fulfilled(
        CHART,
        order_key="acme:1",
        fulfilment_id="F1",
        at=AT,
        currency="CNY",
        lines=[rules.SaleLine("TEE", "main", 1, D("100"), D("13"))],
        stock={("TEE", "main"): (3, avg)},
    )
    paid = rules.payment_captured(
        CHART,
        order_key="acme:1",
        payment_id="P1",
        at=AT,
        amount=D("113"),
        currency="CNY",
        gateway="alipay",
    )
    count = rules.stock_counted(
        CHART,
        count_id="C1",
        sku="TEE",
        location="main",
        at=AT,
        on_hand=2,
        avg_cost=avg,
        counted=1,
    )
    async with session_factory(engine)() as s, s.begin():
        for v in (receipt, sale, paid, count):
            assert v is not None
            results.append(await ledger.post(s, v))
        s.add(Stock(sku="TEE", location="main", on_hand=1, avg_cost=avg))
    return results


async def test_a_voucher_is_booked_once(engine: AsyncEngine) -> None:
    assert await _scenario(engine) == [True, True, True, True]
    sale = rules.sale_fulfilled(
        CHART,
        order_key="acme:1",
        fulfilment_id="F1",
        at=AT,
        currency="CNY",
        lines=[rules.SaleLine("TEE", "main", 1, D("100"), D("13"))],
        stock={("TEE", "main"): (2, D("10"))},
    )
    assert sale is not None
    async with session_factory(engine)() as s, s.begin():
        before = await s.scalar(select(func.count()).select_from(VoucherLineRow))
        assert await ledger.post(s, sale) is False
        assert await s.scalar(select(func.count()).select_from(VoucherLineRow)) == before
        finance = await s.get(OrderFinance, "acme:1")
        assert finance is not None
        assert (finance.billed_minor, finance.paid_minor) == (11300, 11300)


async def test_books_agree_after_a_scenario_and_the_trial_balance_nets_to_zero(
    engine: AsyncEngine,
) -> None:
    await _scenario(engine)
    async with session_factory(engine)() as s, s.begin():
        assert await ledger.check_books(s, CHART) == []
        tb = {row.account: row for row in await ledger.trial_balance(s)}
    assert sum(row.balance for row in tb.values()) == 0
    assert tb["1405"].balance == D("10.00")  # 1 unit at 10.00
    assert tb["1122"].balance == 0
    assert tb["1012"].balance == D("113.00")
    assert tb["6001"].balance == D("-100.00")
    assert tb["6711"].balance == D("10.00")
    assert tb["1405"].name == "库存商品"


async def test_check_finds_stock_that_the_books_do_not_know(engine: AsyncEngine) -> None:
    await _scenario(engine)
    async with session_factory(engine)() as s, s.begin():
        await s.execute(update(Stock).values(on_hand=4))
        problems = await ledger.check_books(s, CHART)
    assert {(p.check, p.subject) for p in problems} == {
        ("inventory", "TEE@main"),
        ("inventory", "total"),
    }
    detail = next(p for p in problems if p.subject == "total")
    assert (detail.expected, detail.actual) == (D("40.00"), D("10.00"))


async def test_check_finds_receivables_that_disagree_with_orders(engine: AsyncEngine) -> None:
    await _scenario(engine)
    async with session_factory(engine)() as s, s.begin():
        await s.execute(update(OrderFinance).values(paid_minor=5000))
        problems = await ledger.check_books(s, CHART)
    assert {(p.check, p.subject) for p in problems} == {
        ("receivables", "acme:1"),
        ("receivables", "total CNY"),
    }


async def test_check_finds_an_unbalanced_voucher_written_behind_the_ledgers_back(
    engine: AsyncEngine,
) -> None:
    await _scenario(engine)
    async with session_factory(engine)() as s, s.begin():
        await s.execute(
            text(
                "INSERT INTO voucher_lines (voucher_id, line_no, account, account_name, currency,"
                " debit_minor, credit_minor) VALUES ('forged', 1, '6001', '', 'CNY', 0, 100)"
            )
        )
        problems = await ledger.check_books(s, CHART)
    assert [(p.check, p.subject) for p in problems] == [("unbalanced_voucher", "forged")]


def test_books_cli_reports_and_exits_non_zero_on_a_mismatch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HUB_DATABASE_URL", url)
    monkeypatch.delenv("HUB_CONFIG", raising=False)
    # Logging set up against the runner's captured stderr would outlive the test; not needed here.
    monkeypatch.setattr("hub.cli.common.configure_logging", lambda *a, **k: None)

    async def setup() -> None:
        eng = make_engine(url)
        await upgrade(eng)
        await _scenario(eng)
        await eng.dispose()

    asyncio.run(setup())
    cli = CliRunner()
    tb = cli.invoke(books.app, ["trial-balance", "--json"])
    assert tb.exit_code == 0, tb.output
    doc = json.loads(tb.stdout)
    assert doc["balanced"] is True
    assert {"account": "1405", "balance": "10.00"}.items() <= next(
        a for a in doc["accounts"] if a["account"] == "1405"
    ).items()
    ok = cli.invoke(books.app, ["check", "--json"])
    assert ok.exit_code == 0 and json.loads(ok.stdout) == {"ok": True, "problems": []}

    async def tamper() -> None:
        eng = make_engine(url)
        async with session_factory(eng)() as s, s.begin():
            await s.execute(update(Stock).values(avg_cost=D("11")))
        await eng.dispose()

    asyncio.run(tamper())
    bad = cli.invoke(books.app, ["check", "--json"])
    assert bad.exit_code == 1
    assert {p["check"] for p in json.loads(bad.stdout)["problems"]} == {"inventory"}


async def test_concurrent_posts_of_one_voucher_book_it_once(engine: AsyncEngine) -> None:
    v = rules.payment_captured(
        CHART, order_key="acme:9", payment_id="P9", at=AT, amount=D("5"), currency="CNY"
    )
    assert v is not None
    factory = session_factory(engine)

    async def post_once() -> bool:
        async with factory() as s, s.begin():
            return await ledger.post(s, v)

    results = await asyncio.gather(*(post_once() for _ in range(4)))
    assert sorted(results) == [False, False, False, True]
    async with factory() as s:
        finance = await s.get(OrderFinance, "acme:9")
        assert finance is not None and finance.paid_minor == 500


async def test_the_finance_migration_downgrades_and_upgrades_again(engine: AsyncEngine) -> None:
    await downgrade(engine, "0001_core")
    assert await current(engine) == "0001_core"
    await upgrade(engine)
    assert await current(engine) == head()
    assert await _scenario(engine) == [True, True, True, True]


def _payment(n: int, order: str, amount: str) -> Any:
    return rules.payment_captured(
        CHART,
        order_key=order,
        payment_id=f"P{n}",
        at=AT,
        amount=D(amount),
        currency="CNY",
        gateway="alipay",
    )


async def test_many_vouchers_book_in_bulk_as_one_by_one_would(engine: AsyncEngine) -> None:
    """A batch's vouchers in one call: the ones booked before and the repeats in the list are
    skipped, the lines and each order's receivable come out as posting one by one does."""
    await _scenario(engine)  # books P1 for acme:1
    async with session_factory(engine)() as s:
        before = await s.scalar(select(func.count()).select_from(VoucherLineRow)) or 0
    again = _payment(1, "acme:1", "113")
    batch = [_payment(n, f"acme:{n % 3}", f"{n}.50") for n in range(2, 1202)]
    batch.insert(600, again)
    batch.append(batch[10])
    async with session_factory(engine)() as s, s.begin():
        booked = await ledger.post_many(s, batch)
    assert [v.voucher_id for v in booked] == [v.voucher_id for v in batch[:600] + batch[601:-1]]
    async with session_factory(engine)() as s:
        lines = await s.scalar(select(func.count()).select_from(VoucherLineRow))
        paid = {
            r.order_key: r.paid_minor for r in (await s.execute(select(OrderFinance))).scalars()
        }
    assert lines == before + 2 * 1200  # two lines per payment
    expected = {f"acme:{k}": 0 for k in range(3)}
    expected["acme:1"] = 11300
    for n in range(2, 1202):
        expected[f"acme:{n % 3}"] += n * 100 + 50
    assert paid == expected
    async with session_factory(engine)() as s, s.begin():
        assert await ledger.post_many(s, batch) == []
        assert await ledger.check_books(s, CHART) == []


async def test_causes_claimed_ahead_answer_first_time_once(engine: AsyncEngine) -> None:
    from hub.finance import billing

    async with session_factory(engine)() as s, s.begin():
        assert await billing.first_time(s, "seen-before")
    async with session_factory(engine)() as s, s.begin():
        await billing.claim_first_times(s, ["seen-before", "new-1", "new-2", "new-1"])
        answers = [
            await billing.first_time(s, c) for c in ("new-1", "seen-before", "new-1", "new-2")
        ]
        assert answers == [True, False, False, True]
        assert await billing.first_time(s, "never-claimed") is True
    async with session_factory(engine)() as s, s.begin():
        assert [await billing.first_time(s, c) for c in ("new-1", "never-claimed")] == [
            False,
            False,
        ]
