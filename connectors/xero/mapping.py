"""Voucher → Xero ManualJournal, and JSON without floats.

Xero's sign convention: a journal line's `LineAmount` is positive for a debit and negative for a
credit, and the lines of a journal sum to zero. Account codes are the organisation's codes in
Xero; `account_codes` maps the hub's chart codes to them (unmapped codes pass through).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from schemas.finance import VoucherIssued

NARRATION_MAX = 4000


def manual_journal(
    voucher: VoucherIssued, account_codes: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The ManualJournal object for a voucher (amounts stay Decimal; see `dumps`)."""
    codes = account_codes or {}
    narration = f"{voucher.memo or voucher.cause_type} [{voucher.cause_type} {voucher.cause_ref}]"
    return {
        "Narration": f"{narration} voucher {voucher.voucher_id}"[:NARRATION_MAX],
        "Date": voucher.date.isoformat(),
        "Status": "POSTED",
        "LineAmountTypes": "NoTax",
        "JournalLines": [
            {
                "LineAmount": line.debit if line.debit > 0 else -line.credit,
                "AccountCode": codes.get(line.account, line.account),
                "Description": (line.memo or line.account_name)[:NARRATION_MAX],
            }
            for line in voucher.lines
        ],
    }


def request_body(
    voucher: VoucherIssued, account_codes: Mapping[str, str] | None = None
) -> dict[str, Any]:
    return {"ManualJournals": [manual_journal(voucher, account_codes)]}


def dumps(value: Any) -> str:
    """JSON text with Decimal written as an exact number (never through float)."""
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} is not a finite amount")
        return format(value, "f")
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def loads(text: str | bytes) -> Any:
    """JSON with every number that has a fraction read as Decimal."""
    return json.loads(text, parse_float=Decimal)
