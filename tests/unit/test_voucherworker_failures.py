"""What the voucher worker does when a finance sink fails: a transient failure re-reads the
batch and leaves no dead letter (the voucher is delivered on the re-read, and a replayed letter
would post it again); a refusal is dead-lettered, and a letter that cannot be published
re-reads the batch instead of dropping the refusal."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from connectors.errors import ConnectorError
from hub.config import HubConfig, Settings
from hub.finance import rules
from hub.finance.chart import CN_SMALL_BUSINESS
from hub.voucherworker import VoucherWorker
from schemas import topics


def voucher():
    v = rules.sale_fulfilled(
        CN_SMALL_BUSINESS,
        order_key="acme:1",
        fulfilment_id="F1",
        at=datetime(2026, 11, 22, tzinfo=UTC),
        currency="CNY",
        lines=[rules.SaleLine("TEE", "main", 1, Decimal("10"), Decimal("1.30"))],
        stock={("TEE", "main"): (5, Decimal("4"))},
    )
    assert v is not None
    return v


class Failing:
    def __init__(self, retryable: bool) -> None:
        self.retryable, self.calls = retryable, 0

    async def deliver(self, v) -> bool:
        self.calls += 1
        raise ConnectorError("down" if self.retryable else "refused", retryable=self.retryable)


class Letters:
    def __init__(self, broken: bool = False) -> None:
        self.sent: list = []
        self.broken = broken

    async def send_many(self, items) -> None:
        if self.broken:
            raise RuntimeError("broker unavailable")
        self.sent.extend(items)


def worker(tmp_path, letters: Letters) -> VoucherWorker:
    settings = Settings(var_dir=tmp_path)
    settings.__dict__["hub"] = HubConfig()
    return VoucherWorker(settings, letters, attempts=2)  # type: ignore[arg-type]


async def test_a_sink_that_stays_down_re_reads_the_batch_and_leaves_no_letter(
    tmp_path, monkeypatch
):
    monkeypatch.setattr("hub.voucherworker.asyncio.sleep", _no_wait)
    letters, sink, v = Letters(), Failing(retryable=True), voucher()
    with pytest.raises(ConnectorError):
        await worker(tmp_path, letters)._deliver("books", sink, v, v.model_dump_json().encode())
    assert sink.calls == 2 and letters.sent == []


async def test_a_refusal_is_dead_lettered_and_a_letter_that_cannot_go_re_reads(tmp_path):
    letters, v = Letters(), voucher()
    await worker(tmp_path, letters)._deliver("books", Failing(False), v, b"{}")
    [(topic, key, _, headers)] = letters.sent
    assert (topic, key) == (topics.DLQ, v.voucher_id) and b"refused" in dict(headers)["dlq_error"]
    with pytest.raises(RuntimeError):
        await worker(tmp_path, Letters(broken=True))._deliver("books", Failing(False), v, b"{}")


async def test_a_refusal_names_where_and_when_its_record_was_read(tmp_path):
    """Partition, offset and the record's time: a replay that lands at the same position after
    the embedded broker restarted, refused again, is another letter."""
    letters, v = Letters(), voucher()
    from types import SimpleNamespace

    read = SimpleNamespace(partition=2, offset=7, timestamp=1234)
    await worker(tmp_path, letters)._deliver("books", Failing(False), v, b"{}", (), read)
    [(_, _, _, headers)] = letters.sent
    fields = dict(headers)
    assert (fields["dlq_partition"], fields["dlq_offset"]) == (b"2", b"7")
    assert fields["dlq_timestamp"] == b"1234"


async def _no_wait(_: float) -> None:
    return None


def test_a_paced_accounting_api_takes_batches_it_delivers_within_the_poll_interval(tmp_path):
    """Xero allows about a call a second: 500 vouchers a batch would outlast the consumer's
    five-minute poll interval, leave the group, and be read again for ever. A local journal
    takes 500."""
    from hub.config import AccountConfig

    books = AccountConfig(connector="beancount", path=str(tmp_path / "books.beancount"))
    xero = AccountConfig(connector="xero", api_token="t", tenant_id="org")
    sizes = []
    for accounts in (
        {"books": books},
        {"books": books, "xero": xero},
        {"books": books, "xero": xero, "xero-hk": xero},
    ):
        settings = Settings(var_dir=tmp_path)
        settings.__dict__["hub"] = HubConfig(accounts=accounts)
        w = VoucherWorker(settings, Letters())  # type: ignore[arg-type]
        sizes.append((w.batch_size, w.poll_interval_ms // 60_000))
        for sink in w.sinks.values():
            close = getattr(getattr(sink, "sink", None), "close", None)
            if close:
                close()
    assert sizes == [(500, 5), (20, 30), (10, 30)]
