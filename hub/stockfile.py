"""Stocktake CSV files (`sku,location,quantity`): every bad line is named by its line number."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime

from pydantic import ValidationError

from schemas.base import now_utc
from schemas.envelope import Envelope, content_id, message_id
from schemas.stock import StockCounted

HEADER = ["sku", "location", "quantity"]


class StockFileError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems[:20]) + (" …" if len(problems) > 20 else ""))
        self.problems = problems


@dataclass(frozen=True)
class CountLine:
    line: int
    sku: str
    location: str
    quantity: int


def parse(text: str) -> list[CountLine]:
    """Parse the whole file; raise StockFileError listing every bad line (nothing is applied)."""
    problems: list[str] = []
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or [c.strip().lower() for c in rows[0]] != HEADER:
        raise StockFileError([f"line 1: header must be {','.join(HEADER)}"])
    out: list[CountLine] = []
    seen: dict[tuple[str, str], int] = {}
    for n, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != 3:
            problems.append(f"line {n}: expected 3 fields, got {len(row)}")
            continue
        sku, location, qty = (c.strip() for c in row)
        try:
            quantity = int(qty)
        except ValueError:
            problems.append(f"line {n}: quantity {qty!r} is not a whole number")
            continue
        if quantity < 0:
            problems.append(f"line {n}: quantity {quantity} is negative")
            continue
        location = location or "main"
        if sku and not sku.strip("."):
            # A shop's stock URL would read it as a directory ("/stock/.." is "/").
            problems.append(f"line {n}: SKU {sku!r} is only dots, which no shop can name")
            continue
        if (sku, location) in seen:
            problems.append(
                f"line {n}: {sku}@{location} already counted on line {seen[(sku, location)]}"
            )
            continue
        seen[(sku, location)] = n
        out.append(CountLine(n, sku, location, quantity))
    envelopes_or_errors(out, "check", problems)
    if problems:
        raise StockFileError(problems)
    return out


def envelopes_or_errors(
    lines: list[CountLine],
    count_id: str,
    problems: list[str] | None = None,
    counted_at: datetime | None = None,
) -> list[Envelope]:
    """One `StockCounted` a line, as of `counted_at` (default now). A line's id holds its
    quantity: the same file sent again counts once, and a line corrected under the same count
    id counts again."""
    now = now_utc()
    counted_at = counted_at or now
    out = []
    for cl in lines:
        try:
            msg = StockCounted(
                sku=cl.sku,
                location=cl.location,
                quantity=cl.quantity,
                count_id=count_id,
                counted_at=counted_at,
            )
        except ValidationError as exc:
            if problems is None:
                raise
            err = exc.errors()[0]
            problems.append(f"line {cl.line}: {err['loc'][0]}: {err['msg']}")
            continue
        out.append(
            Envelope(
                id=message_id("stock-count", count_id, cl.sku, cl.location, str(cl.quantity)),
                source="hub/cli",
                data=msg,
                time=now,
            )
        )
    return out


def count_envelopes(
    text: str, count_id: str | None = None, counted_at: datetime | None = None
) -> tuple[str, list[Envelope]]:
    """By default the count's id is the day and the file's content: submitting the same file twice
    the same day applies it once."""
    lines = parse(text)
    count_id = count_id or "count-" + now_utc().strftime("%Y%m%d-") + content_id(text)[:12]
    return count_id, envelopes_or_errors(lines, count_id, counted_at=counted_at)
