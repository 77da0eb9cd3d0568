"""The Beancount sink writes a journal that `bean-check` accepts, once per voucher, even across
restarts and after a crash that left half a transaction."""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from connectors.beancount.sink import BeancountSink, UnmappedAccount, account_name
from connectors.beancount.subscriber import from_account
from connectors.errors import ConnectorError
from hub.config import AccountConfig, HubConfig
from hub.finance import costing, rules
from hub.finance.chart import CN_SMALL_BUSINESS, IFRS_EN, Chart, Role
from schemas.finance import VoucherIssued, VoucherLine

AT = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
D = Decimal


def bean_check(path: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("bean-check") or str(Path(sys.executable).parent / "bean-check")
    if not Path(exe).exists():
        pytest.fail("bean-check not found: install the test extra `beancount>=3.0`")
    return subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=60)


def vouchers(chart: Chart) -> list[VoucherIssued]:
    cur = chart.currency
    avg = costing.receive(0, D(0), 3, D("3.333333"))
    made = [
        rules.goods_received(
            chart,
            receipt_id="GRN-1",
            sku="TEE",
            location="main",
            at=AT,
            currency=cur,
            quantity=3,
            unit_cost=D("3.333333"),
            on_hand=0,
            avg_cost=D(0),
        ),
        rules.sale_fulfilled(
            chart,
            order_key="acme:1",
            fulfilment_id="F1",
            at=AT,
            currency=cur,
            lines=[rules.SaleLine("TEE", "main", 1, D("10"), D("1.30"))],
            stock={("TEE", "main"): (3, avg)},
        ),
        rules.payment_captured(
            chart,
            order_key="acme:1",
            payment_id="P1",
            at=AT,
            amount=D("11.30"),
            currency=cur,
            gateway="alipay",
        ),
        rules.supplier_invoice(
            chart,
            invoice_id='INV "7"',
            supplier="acme-supply",
            at=AT,
            currency=cur,
            received_value=D("10.00"),
            net=D("10.50"),
            vat=D("1.37"),
        ),
        rules.stock_counted(
            chart,
            count_id="C1",
            sku="TEE",
            location="main",
            at=AT,
            on_hand=2,
            avg_cost=avg,
            counted=1,
        ),
    ]
    return [v for v in made if v is not None]


@pytest.mark.parametrize("chart", [CN_SMALL_BUSINESS, IFRS_EN], ids=lambda c: c.name)
def test_bean_check_accepts_the_journal(tmp_path: Path, chart: Chart) -> None:
    path = tmp_path / "books.beancount"
    with BeancountSink(path, chart) as sink:
        assert all(sink.write(v) for v in vouchers(chart))
    result = bean_check(path)
    assert result.returncode == 0, result.stdout + result.stderr
    text = path.read_text()
    assert text.count("open Assets:") >= 3
    assert account_name(chart, chart[Role.RECEIVABLE].code) in text


def test_a_voucher_is_written_once_even_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "books.beancount"
    vs = vouchers(CN_SMALL_BUSINESS)
    with BeancountSink(path, CN_SMALL_BUSINESS) as sink:
        assert sink.write(vs[0]) is True
        assert sink.write(vs[0]) is False
    with BeancountSink(path, CN_SMALL_BUSINESS) as sink:
        assert [sink.write(v) for v in vs] == [False] + [True] * (len(vs) - 1)
    text = path.read_text()
    for v in vs:
        assert text.count(f'voucher_id: "{v.voucher_id}"') == 1
    assert text.count("open Assets:1405-Inventory") == 1
    assert bean_check(path).returncode == 0


def test_a_torn_tail_is_cut_and_written_again(tmp_path: Path) -> None:
    path = tmp_path / "books.beancount"
    vs = vouchers(CN_SMALL_BUSINESS)
    with BeancountSink(path, CN_SMALL_BUSINESS) as sink:
        sink.write(vs[0])
        sink.write(vs[1])
    whole = path.read_text()
    path.write_text(whole[: len(whole) - 40])  # a crash in the middle of the second voucher
    with BeancountSink(path, CN_SMALL_BUSINESS) as sink:
        assert sink.write(vs[0]) is False
        assert sink.write(vs[1]) is True
    result = bean_check(path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert path.read_text().count(vs[1].voucher_id) == 2  # metadata and link


@pytest.mark.parametrize("fails", ["fsync", "write"])
def test_a_write_the_disk_fails_leaves_nothing_behind_and_the_retry_books_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fails: str
) -> None:
    """An fsync that fails after the bytes reached the file (an I/O error), or a write the disk
    cannot take whole (full): the file is cut back, and the retry appends the voucher once."""
    import os

    path = tmp_path / "books.beancount"
    vs = vouchers(CN_SMALL_BUSINESS)
    real = {"fsync": os.fsync, "write": os.write}
    calls = {"n": 0}

    def broken(fd: int, *args: object) -> object:
        calls["n"] += 1
        if calls["n"] == 1:
            if fails == "write":
                real["write"](fd, b"2026-11-22 * half a trans")  # part of it landed
            raise OSError(28, "No space left on device")
        return real[fails](fd, *args)  # type: ignore[operator]

    with BeancountSink(path, CN_SMALL_BUSINESS) as sink:
        sink.write(vs[0])
        monkeypatch.setattr(f"connectors.beancount.sink.os.{fails}", broken)
        with pytest.raises(OSError):
            sink.write(vs[1])
        assert sink.write(vs[1]) is True
        monkeypatch.undo()
    text = path.read_text()
    assert text.count(f'voucher_id: "{vs[1].voucher_id}"') == 1 and "half a trans" not in text
    result = bean_check(path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_write_that_cannot_be_cut_back_is_cut_when_the_file_is_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk fails the write part-way and then the cut-back too: the next write reads the
    file again, which drops the fragment, and the voucher is booked once, whole."""
    import os

    path = tmp_path / "books.beancount"
    vs = vouchers(CN_SMALL_BUSINESS)
    real_write = os.write

    def torn(fd: int, data: object) -> int:
        real_write(fd, b"2026-11-22 * half a trans")
        raise OSError(5, "Input/output error")

    def refuse(fd: int, size: int) -> None:
        raise OSError(5, "Input/output error")

    with BeancountSink(path, CN_SMALL_BUSINESS) as sink:
        sink.write(vs[0])
        monkeypatch.setattr("connectors.beancount.sink.os.write", torn)
        monkeypatch.setattr("connectors.beancount.sink.os.ftruncate", refuse)
        with pytest.raises(OSError):
            sink.write(vs[1])
        monkeypatch.undo()
        assert sink.write(vs[1]) is True
    text = path.read_text()
    assert "half a trans" not in text and text.count(f'voucher_id: "{vs[1].voucher_id}"') == 1
    assert bean_check(path).returncode == 0


def test_a_second_writer_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "books.beancount"
    with BeancountSink(path, CN_SMALL_BUSINESS), pytest.raises(RuntimeError, match="another"):
        BeancountSink(path, CN_SMALL_BUSINESS).open()


def test_an_unknown_account_code_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "books.beancount"
    v = VoucherIssued(
        voucher_id="x",
        date=AT.date(),
        period="2026-11",
        cause_type="manual",
        cause_ref="x",
        currency="CNY",
        lines=(
            VoucherLine(account="9999", account_name="?", debit=D("1.00")),
            VoucherLine(account="1002", account_name="bank", credit=D("1.00")),
        ),
    )
    with BeancountSink(path, CN_SMALL_BUSINESS) as sink:
        before = path.read_text()
        with pytest.raises(UnmappedAccount):
            sink.write(v)
        assert path.read_text() == before


async def test_account_config_builds_a_sink_that_refuses_unknown_accounts_permanently(
    tmp_path: Path,
) -> None:
    sink = from_account(AccountConfig(connector="beancount"), HubConfig(), tmp_path)
    vs = vouchers(CN_SMALL_BUSINESS)
    assert await sink.deliver(vs[0]) is True
    assert await sink.deliver(vs[0]) is False
    forged = vs[1].model_copy(
        update={
            "voucher_id": "forged",
            "lines": tuple(
                line.model_copy(update={"account": "9999"}) if i == 0 else line
                for i, line in enumerate(vs[1].lines)
            ),
        }
    )
    with pytest.raises(ConnectorError) as err:
        await sink.deliver(forged)
    assert err.value.retryable is False
    await sink.aclose()
    assert bean_check(tmp_path / "books.beancount").returncode == 0
