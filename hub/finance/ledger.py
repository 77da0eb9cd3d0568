"""The books in the store: post vouchers, the trial balance, and the checks that the books agree
with the warehouse and with the orders. Every function runs inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from hub.finance import costing
from hub.finance.chart import CN_SMALL_BUSINESS, Chart, Role
from hub.finance.tables import OrderFinance, VoucherLineRow, VoucherRow
from hub.store import bulk
from hub.store.models import Stock, table
from schemas.base import CURRENCY_EXPONENT
from schemas.finance import VoucherIssued

# Causes whose receivable lines bill the customer; the others (payments, refunds) settle.
BILLING_CAUSES = frozenset({"sale_fulfilled", "sale_billed", "order_returned"})


def to_minor(amount: Decimal, currency: str) -> int:
    scaled = amount.scaleb(CURRENCY_EXPONENT.get(currency, 2))
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{amount} {currency} is not rounded to the minor unit")
    return int(scaled)


def from_minor(units: int, currency: str) -> Decimal:
    exp = CURRENCY_EXPONENT.get(currency, 2)
    return Decimal(units).scaleb(-exp).quantize(Decimal(1).scaleb(-exp))


def insert(session: AsyncSession, model: Any) -> Any:
    """INSERT with ON CONFLICT support on both SQLite and PostgreSQL."""
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(model)


async def post(session: AsyncSession, voucher: VoucherIssued) -> bool:
    """Book a voucher and its lines; False (and nothing written) if its id was booked before.

    Lines that name an order also move that order's receivable sub-ledger.
    """
    return bool(await post_many(session, [voucher]))


async def post_many(
    session: AsyncSession, vouchers: Sequence[VoucherIssued]
) -> list[VoucherIssued]:
    """Book many vouchers in a few statements, whatever their number: one INSERT … ON CONFLICT
    DO NOTHING RETURNING for the vouchers (`hub.store.bulk`), one for all their lines, one
    upsert for the orders' receivables. Returns the vouchers booked now, in the given order (an
    id booked before, or twice in the list, is booked once)."""
    unique: dict[str, VoucherIssued] = {}
    for v in vouchers:
        unique.setdefault(v.voucher_id, v)
    if not unique:
        return []
    items = list(unique.values())
    new = await bulk.insert_new(
        session,
        table(VoucherRow),
        [
            {
                "voucher_id": v.voucher_id,
                "date": v.date,
                "period": v.period,
                "cause_type": v.cause_type,
                "cause_ref": v.cause_ref,
                "currency": v.currency,
                "memo": v.memo,
                "lines": [line.model_dump(mode="json") for line in v.lines],
            }
            for v in items
        ],
        ("voucher_id",),
    )
    booked = {k[0] for k in new}
    now = [v for v in items if v.voucher_id in booked]
    if not now:
        return []
    rows: list[dict[str, Any]] = []
    per_order: dict[str, list[Any]] = {}
    for voucher in now:
        cur = voucher.currency
        billing = voucher.cause_type in BILLING_CAUSES
        for n, line in enumerate(voucher.lines, start=1):
            rows.append(
                {
                    "voucher_id": voucher.voucher_id,
                    "line_no": n,
                    "account": line.account,
                    "account_name": line.account_name,
                    "currency": cur,
                    "debit_minor": to_minor(line.debit, cur),
                    "credit_minor": to_minor(line.credit, cur),
                    "sku": line.sku,
                    "location": line.location,
                    "order_key": line.order_key,
                }
            )
            if line.order_key:
                delta = to_minor(line.debit - line.credit, cur)
                acc = per_order.setdefault(line.order_key, [cur, 0, 0])
                if billing:
                    acc[1] += delta
                else:
                    acc[2] -= delta
    await bulk.insert(session, table(VoucherLineRow), rows)
    if per_order:
        ins = insert(session, OrderFinance)
        await session.execute(
            ins.on_conflict_do_update(
                index_elements=["order_key"],
                set_={
                    "billed_minor": OrderFinance.billed_minor + ins.excluded.billed_minor,
                    "paid_minor": OrderFinance.paid_minor + ins.excluded.paid_minor,
                    "updated_at": func.now(),
                },
            ),
            [  # in key order, so concurrent batches lock the orders' rows in one order
                {"order_key": k, "currency": c, "billed_minor": b, "paid_minor": p}
                for k, (c, b, p) in sorted(per_order.items())
            ],
        )
    return now


@dataclass(frozen=True, slots=True)
class TrialBalanceRow:
    account: str
    name: str
    currency: str
    debit: Decimal
    credit: Decimal

    @property
    def balance(self) -> Decimal:
        """Debit balance positive, credit balance negative."""
        return self.debit - self.credit

    def as_json(self) -> dict[str, str]:
        return {
            "account": self.account,
            "name": self.name,
            "currency": self.currency,
            "debit": str(self.debit),
            "credit": str(self.credit),
            "balance": str(self.balance),
        }


async def trial_balance(session: AsyncSession) -> list[TrialBalanceRow]:
    """Debit and credit totals per account and currency, ordered by account code."""
    q = (
        select(
            VoucherLineRow.account,
            func.max(VoucherLineRow.account_name),
            VoucherLineRow.currency,
            func.coalesce(func.sum(VoucherLineRow.debit_minor), 0),
            func.coalesce(func.sum(VoucherLineRow.credit_minor), 0),
        )
        .group_by(VoucherLineRow.account, VoucherLineRow.currency)
        .order_by(VoucherLineRow.account, VoucherLineRow.currency)
    )
    return [
        TrialBalanceRow(acc, name or "", cur, from_minor(int(d), cur), from_minor(int(c), cur))
        for acc, name, cur, d, c in (await session.execute(q)).all()
    ]


@dataclass(frozen=True, slots=True)
class Problem:
    """A place where the books disagree with themselves, the warehouse or the orders."""

    check: str  # unbalanced_voucher | inventory | receivables
    subject: str  # voucher id, "sku@location", order key, or "total"
    expected: Decimal
    actual: Decimal

    def as_json(self) -> dict[str, str]:
        return {
            "check": self.check,
            "subject": self.subject,
            "expected": str(self.expected),
            "actual": str(self.actual),
        }

    def __str__(self) -> str:
        return f"{self.check} {self.subject}: expected {self.expected}, books say {self.actual}"


async def _balance_by(
    session: AsyncSession, account: str, currency: str, *keys: Any
) -> dict[tuple[Any, ...], int]:
    q = (
        select(
            *keys,
            func.sum(VoucherLineRow.debit_minor) - func.sum(VoucherLineRow.credit_minor),
        )
        .where(VoucherLineRow.account == account, VoucherLineRow.currency == currency)
        .group_by(*keys)
    )
    return {tuple(r[:-1]): int(r[-1] or 0) for r in (await session.execute(q)).all()}


async def check_books(session: AsyncSession, chart: Chart = CN_SMALL_BUSINESS) -> list[Problem]:
    """Every voucher balances; the inventory account equals Σ round(on_hand × avg_cost) per stock
    row and in total; the receivable account equals Σ (billed − paid) of the orders."""
    problems: list[Problem] = []

    unbalanced = (
        select(
            VoucherLineRow.voucher_id,
            VoucherLineRow.currency,
            func.sum(VoucherLineRow.debit_minor),
            func.sum(VoucherLineRow.credit_minor),
        )
        .group_by(VoucherLineRow.voucher_id, VoucherLineRow.currency)
        .having(func.sum(VoucherLineRow.debit_minor) != func.sum(VoucherLineRow.credit_minor))
    )
    for vid, vcur, d, cr in (await session.execute(unbalanced)).all():
        problems.append(
            Problem("unbalanced_voucher", vid, from_minor(int(d), vcur), from_minor(int(cr), vcur))
        )

    cur = chart.currency
    inv = chart[Role.INVENTORY].code
    booked = await _balance_by(session, inv, cur, VoucherLineRow.sku, VoucherLineRow.location)
    stock = (
        await session.execute(select(Stock.sku, Stock.location, Stock.on_hand, Stock.avg_cost))
    ).all()
    valued = {
        (sku, loc): to_minor(costing.value(on_hand, Decimal(avg), cur), cur)
        for sku, loc, on_hand, avg in stock
    }
    for key in sorted(set(booked) | set(valued), key=lambda k: tuple(str(p) for p in k)):
        expected, actual = valued.get(key, 0), booked.get(key, 0)
        if expected != actual:
            subject = f"{key[0]}@{key[1]}" if key[0] is not None else "(no sku)"
            problems.append(
                Problem("inventory", subject, from_minor(expected, cur), from_minor(actual, cur))
            )
    total_expected, total_actual = sum(valued.values()), sum(booked.values())
    if total_expected != total_actual:
        problems.append(
            Problem(
                "inventory", "total", from_minor(total_expected, cur), from_minor(total_actual, cur)
            )
        )

    rec = chart[Role.RECEIVABLE].code
    currencies = {
        c for (c,) in (await session.execute(select(OrderFinance.currency).distinct())).all()
    }
    currencies |= {
        c
        for (c,) in (
            await session.execute(
                select(VoucherLineRow.currency).where(VoucherLineRow.account == rec).distinct()
            )
        ).all()
    }
    for c in sorted(currencies):
        by_order = await _balance_by(session, rec, c, VoucherLineRow.order_key)
        ledger = {
            k: int(b) - int(p)
            for k, b, p in (
                await session.execute(
                    select(
                        OrderFinance.order_key, OrderFinance.billed_minor, OrderFinance.paid_minor
                    ).where(OrderFinance.currency == c)
                )
            ).all()
        }
        for (order_key,), actual in sorted(by_order.items(), key=lambda kv: str(kv[0][0])):
            expected = ledger.get(order_key, 0) if order_key else 0
            if expected != actual:
                problems.append(
                    Problem(
                        "receivables",
                        order_key or "(no order)",
                        from_minor(expected, c),
                        from_minor(actual, c),
                    )
                )
        total_e, total_a = sum(ledger.values()), sum(by_order.values())
        if total_e != total_a:
            problems.append(
                Problem("receivables", f"total {c}", from_minor(total_e, c), from_minor(total_a, c))
            )
    return problems
