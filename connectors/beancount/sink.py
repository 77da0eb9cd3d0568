"""An append-only Beancount journal: one transaction per voucher, never written twice.

- Each transaction carries the voucher id as metadata (`voucher_id:`) and as a link (`^v-…`).
  At open, the file is scanned for the ids already written; `write()` of a known id does nothing.
- Each write is one `write()` + `fsync`; a transaction ends with a blank line, so a torn tail
  left by a crash (no closing blank line) is cut off at the next open and written again.
- Accounts are opened (`open` directives, dated `open_date`) the first time they are used.
  Chart codes become valid Beancount names: the root from the account's class
  (Assets/Liabilities/Equity/Income/Expenses), then `{code}-{Label}`, e.g. `Assets:1122-Receivables`.
- One writer per file: an exclusive `flock` is held while the sink is open.
"""

from __future__ import annotations

import fcntl
import os
import re
from datetime import date
from pathlib import Path
from typing import IO

from hub.finance.chart import Chart, Kind
from schemas.finance import VoucherIssued

ROOTS = {
    Kind.ASSET: "Assets",
    Kind.LIABILITY: "Liabilities",
    Kind.EQUITY: "Equity",
    Kind.INCOME: "Income",
    Kind.EXPENSE: "Expenses",
}
_ID_LINE = re.compile(r'^\s+voucher_id:\s+"([^"]+)"\s*$', re.MULTILINE)
_OPEN_LINE = re.compile(r"^\d{4}-\d{2}-\d{2}\s+open\s+(\S+)", re.MULTILINE)
_COMPONENT = re.compile(r"[^A-Za-z0-9\-]+")


class UnmappedAccount(ValueError):
    """A voucher names an account code the chart does not know."""


def account_name(chart: Chart, code: str) -> str:
    """The Beancount account for a chart code, e.g. `Liabilities:222102-VAT-Output`."""
    acc = chart.by_code(code)
    if acc is None:
        raise UnmappedAccount(f"account code {code!r} is not in chart {chart.name!r}")
    label = _COMPONENT.sub("-", acc.label).strip("-")
    component = _COMPONENT.sub("-", acc.code).strip("-")
    return f"{ROOTS[acc.kind]}:{component}-{label}" if label else f"{ROOTS[acc.kind]}:{component}"


def _quote(text: str) -> str:
    return '"' + " ".join(text.split()).replace("\\", "\\\\").replace('"', '\\"') + '"'


def render(voucher: VoucherIssued, chart: Chart) -> str:
    """The transaction text of a voucher, ending with a blank line."""
    link = "^v-" + re.sub(r"[^A-Za-z0-9\-_/.]", "-", voucher.voucher_id)
    head = (
        f"{voucher.date.isoformat()} * {_quote(voucher.cause_type + ' ' + voucher.cause_ref)} "
        f"{_quote(voucher.memo or voucher.cause_type)} {link}"
    )
    lines = [
        head,
        f"  voucher_id: {_quote(voucher.voucher_id)}",
        f"  period: {_quote(voucher.period)}",
    ]
    for line in voucher.lines:
        amount = line.debit if line.debit > 0 else -line.credit
        lines.append(f"  {account_name(chart, line.account)}  {amount} {voucher.currency}")
        if line.memo:
            lines.append(f"    memo: {_quote(line.memo)}")
    return "\n".join(lines) + "\n\n"


class BeancountSink:
    """Append vouchers to a Beancount file, idempotently. Use as a context manager."""

    def __init__(self, path: Path, chart: Chart, *, open_date: date = date(1970, 1, 1)) -> None:
        self.path = Path(path)
        self.chart = chart
        self.open_date = open_date
        self.written: set[str] = set()
        self.opened: set[str] = set()
        self._file: IO[str] | None = None
        self._torn: int | None = None  # where the file ended before a write not cut back

    def open(self) -> BeancountSink:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists()
        f = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            raise RuntimeError(f"{self.path} is open by another writer") from None
        f.seek(0)
        text = f.read()
        if text and not text.endswith("\n\n"):
            keep = text.rfind("\n\n") + 2 if "\n\n" in text else 0
            text = text[:keep]
            f.truncate(len(text.encode("utf-8")))
        self.written = set(_ID_LINE.findall(text))
        self.opened = set(_OPEN_LINE.findall(text))
        self._file = f
        if new or not text:
            self._append(
                f"; Books of the hub: one transaction per voucher, appended, never edited.\n"
                f'option "title" "Hub books"\n'
                f'option "operating_currency" "{self.chart.currency}"\n\n'
            )
            if new:
                dir_fd = os.open(self.path.parent, os.O_RDONLY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
        return self

    def __enter__(self) -> BeancountSink:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def write(self, voucher: VoucherIssued) -> bool:
        """Append the voucher's transaction (and any `open` it needs); False if already there."""
        if self._torn is not None and self._file is not None:
            # A failed write could not be cut back: cut it now (what it wrote, whole or not,
            # may never reach the disk, whatever a later fsync says), then read the file again.
            os.ftruncate(self._file.fileno(), self._torn)
            os.fsync(self._file.fileno())
            self.close()
            self.open()
            self._torn = None
        if voucher.voucher_id in self.written:
            return False
        body = render(voucher, self.chart)  # raises before anything is written
        names = [account_name(self.chart, line.account) for line in voucher.lines]
        new_accounts = sorted(set(names) - self.opened)
        opens = "".join(f"{self.open_date.isoformat()} open {name}\n" for name in new_accounts)
        self._append((opens + "\n" if opens else "") + body)
        self.opened.update(new_accounts)
        self.written.add(voucher.voucher_id)
        return True

    def _append(self, text: str) -> None:
        """Append `text` durably, or not at all: a write or fsync that fails (a full disk, an
        I/O error) cuts the file back to where it ended, so the retry appends the transaction
        once. Written unbuffered, so no bytes of a failed attempt wait in a buffer to land
        with the next one."""
        if self._file is None:
            raise RuntimeError("the sink is not open")
        fd = self._file.fileno()
        end = os.fstat(fd).st_size
        try:
            rest = memoryview(text.encode("utf-8"))
            while rest:
                rest = rest[os.write(fd, rest) :]  # the file is opened to append
            os.fsync(fd)
        except OSError:
            try:
                os.ftruncate(fd, end)
            except OSError:
                self._torn = end  # what failed may still be there: cut it before the next write
            raise
