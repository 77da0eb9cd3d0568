"""The connector workers' subscribers with FastStream's in-memory TestKafkaBroker: a record that
is not what their topic carries goes to the dead-letter topic with its reason and origin."""

from __future__ import annotations

from datetime import UTC, datetime

from faststream.kafka import KafkaBroker, TestKafkaBroker

from hub.config import AccountConfig, HubConfig, Settings
from hub.pushworker import PushWorker
from hub.voucherworker import VoucherWorker
from schemas import topics
from schemas.levels import StockLevelChanged


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str | None, bytes, list[tuple[str, bytes]]]] = []

    async def send_many(self, items) -> None:
        self.sent.extend(items)


async def test_a_record_that_is_no_stock_level_is_dead_lettered_and_the_rest_pushed(tmp_path):
    settings = Settings(var_dir=tmp_path)
    shop = AccountConfig(
        connector="shopify", channel="online", api_url="http://shop.test", api_token="t"
    )
    settings.__dict__["hub"] = HubConfig(accounts={"acme": shop})
    out = Recorder()
    worker = PushWorker(settings, out)  # type: ignore[arg-type]
    offered: list[StockLevelChanged] = []
    worker.pushout.offer_level = lambda level, causes=(), origin=None: offered.append(level) or []  # type: ignore[method-assign]
    broker = KafkaBroker("localhost:9092")
    worker.subscribe(broker)
    good = StockLevelChanged(
        sku="A",
        channel="online",
        available=3,
        on_hand=3,
        reserved=0,
        version=1,
        changed_at=datetime(2026, 12, 6, tzinfo=UTC),
    )
    async with TestKafkaBroker(broker) as br:
        await br.publish_batch(
            b'{"sku": "A"}', good.model_dump_json().encode(), topic=topics.STOCK_LEVELS
        )
    assert [lv.sku for lv in offered] == ["A"]
    [(topic, _, body, headers)] = out.sent
    fields = dict(headers)
    assert topic == topics.DLQ and body == b'{"sku": "A"}'
    assert fields["dlq_topic"] == topics.STOCK_LEVELS.encode()
    assert fields["dlq_consumer"] == b"hub-connectors"
    assert b"not a stock level" in fields["dlq_error"]
    assert {"dlq_partition", "dlq_offset", "dlq_timestamp"} <= set(fields)


async def test_a_record_that_is_no_voucher_is_dead_lettered(tmp_path):
    settings = Settings(var_dir=tmp_path)
    settings.__dict__["hub"] = HubConfig()
    out = Recorder()
    worker = VoucherWorker(settings, out)  # type: ignore[arg-type]
    broker = KafkaBroker("localhost:9092")
    worker.subscribe(broker)
    async with TestKafkaBroker(broker) as br:
        await br.publish_batch(b"[1, 2]", topic=topics.VOUCHERS)
    [(topic, _, body, headers)] = out.sent
    fields = dict(headers)
    assert topic == topics.DLQ and body == b"[1, 2]"
    assert fields["dlq_topic"] == topics.VOUCHERS.encode()
    assert b"not a voucher" in fields["dlq_error"]
    assert {"dlq_partition", "dlq_offset", "dlq_timestamp"} <= set(fields)
