"""Tables of the books, on the hub's shared metadata. Migration: `0002_finance`.

Amounts are stored as integers in the currency's minor unit (`debit_minor`), so sums in SQL are
exact on SQLite and PostgreSQL alike; `Decimal` is restored on the way out.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Date, Index, Integer, Numeric, String, func
from sqlalchemy.orm import Mapped, mapped_column

from hub.store.models import Base
from schemas.finance import CAUSE_REF_LENGTH


class VoucherRow(Base):
    """An issued voucher; its primary key is the voucher id, so it is never booked twice."""

    __tablename__ = "vouchers"
    __table_args__ = (Index("ix_vouchers_period", "period"),)

    voucher_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    date: Mapped[dt.date] = mapped_column(Date)
    period: Mapped[str] = mapped_column(String(7))
    cause_type: Mapped[str] = mapped_column(String(32))
    cause_ref: Mapped[str] = mapped_column(String(CAUSE_REF_LENGTH))  # migration 0010
    currency: Mapped[str] = mapped_column(String(3))
    memo: Mapped[str] = mapped_column(String(500), default="")
    lines: Mapped[list[Any]] = mapped_column()  # the voucher's lines as JSON, as issued
    created_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())


class VoucherLineRow(Base):
    """One line of a voucher, for the trial balance and the checks."""

    __tablename__ = "voucher_lines"
    __table_args__ = (
        Index("ix_voucher_lines_account", "account"),
        Index("ix_voucher_lines_order", "order_key"),
    )

    voucher_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    line_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    account: Mapped[str] = mapped_column(String(32))
    account_name: Mapped[str] = mapped_column(String(128), default="")
    currency: Mapped[str] = mapped_column(String(3))
    debit_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    credit_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    sku: Mapped[str | None] = mapped_column(String(128), default=None)
    location: Mapped[str | None] = mapped_column(String(64), default=None)
    order_key: Mapped[str | None] = mapped_column(String(200), default=None)


class OrderFinance(Base):
    """Receivable sub-ledger per order: billed (fulfilled less credit notes) and paid (captured
    less refunded). The receivable account must equal Σ (billed − paid)."""

    __tablename__ = "order_finance"

    order_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3))
    billed_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    paid_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())


class OrderLinePrice(Base):
    """What an order line is worth, remembered from OrderPlaced so that fulfilments (which carry
    no prices) can be billed; `shipped` and `billed` count units, so a fulfilment that arrives
    before its order is billed when the prices come. Shipping is the line (`~shipping`, `~`)."""

    __tablename__ = "order_line_prices"

    order_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    sku: Mapped[str] = mapped_column(String(128), primary_key=True)
    location: Mapped[str] = mapped_column(String(64), primary_key=True)
    currency: Mapped[str | None] = mapped_column(String(3), default=None)
    priced: Mapped[bool] = mapped_column(default=False)
    ordered: Mapped[int] = mapped_column(Integer, default=0)
    net: Mapped[Decimal] = mapped_column(Numeric(20, 6), default=Decimal(0))  # tax excluded
    tax: Mapped[Decimal] = mapped_column(Numeric(20, 6), default=Decimal(0))
    shipped: Mapped[int] = mapped_column(Integer, default=0)
    billed: Mapped[int] = mapped_column(Integer, default=0)


class GoodsReceivedNotInvoiced(Base):
    """GRNI per purchase order and SKU: what was received at receipt cost and what of it the
    supplier has invoiced, so an invoice clears exactly what its units were booked at."""

    __tablename__ = "grni"

    po_number: Mapped[str] = mapped_column(String(64), primary_key=True)
    sku: Mapped[str] = mapped_column(String(128), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3))
    received_qty: Mapped[int] = mapped_column(Integer, default=0)
    received_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    invoiced_qty: Mapped[int] = mapped_column(Integer, default=0)
    invoiced_minor: Mapped[int] = mapped_column(BigInteger, default=0)
