"""`/metrics` renders an exposition that Prometheus' own checker and the client's parser accept."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families

from hub import metrics

# Every metric the hub promises (INTERFACE.md, the operations issue), with its type and labels.
EXPECTED = {
    "kafka_consumergroup_group_lag": ("gauge", {"group", "topic", "partition"}),
    "kafka_consumergroup_group_lag_seconds": ("gauge", {"group", "topic", "partition"}),
    "kafka_consumergroup_group_max_lag": ("gauge", {"group"}),
    "kafka_consumergroup_group_max_lag_seconds": ("gauge", {"group"}),
    "kafka_consumergroup_group_sum_lag": ("gauge", {"group"}),
    "hub_consumergroup_status": ("gauge", {"group", "status"}),
    "hub_webhooks_received": ("counter", {"connector", "outcome"}),
    "hub_webhook_latency_seconds": ("histogram", {"connector"}),
    "hub_reservations": ("counter", {"outcome"}),
    "hub_oversell_attempts_refused": ("counter", set()),
    "hub_messages_processed": ("counter", {"consumer", "type"}),
    "hub_core_batch_seconds": ("histogram", set()),
    "hub_core_batch_size": ("histogram", set()),
    "hub_stock_pushes": ("counter", {"account", "outcome"}),
    "hub_stock_push_latency_seconds": ("histogram", {"account"}),
    "hub_outbox_backlog": ("gauge", set()),
    "hub_outbox_oldest_age_seconds": ("gauge", set()),
    "hub_dlq_messages": ("gauge", set()),
    "hub_dead_letters": ("counter", {"topic", "reason"}),
    "hub_connector_healthy": ("gauge", {"account", "connector"}),
    "hub_vouchers_issued": ("counter", set()),
    "hub_purchase_orders_issued": ("counter", set()),
}


def _value(name: str, labels: dict[str, str] | None = None) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels or {}) or 0.0


BEFORE: dict[str, float] = {}


@pytest.fixture(scope="module")
def exposition() -> str:
    """The exposition after every metric has had a sample value (counters are compared by how
    much they grew: other tests in the same process may have counted before)."""
    BEFORE["rejected"] = _value("hub_reservations_total", {"outcome": "rejected"})
    BEFORE["refused"] = _value("hub_oversell_attempts_refused_total")
    BEFORE["batches"] = _value("hub_core_batch_size_count")
    metrics.set_partition_lag("hub-core", "hub.orders.v1", 0, messages=42, seconds=3.5)
    metrics.set_partition_lag("hub-core", "hub.orders.v1", 1, messages=7, seconds=0.25)
    metrics.set_group_lag_totals("hub-core", max_messages=42, max_seconds=3.5, total=49)
    metrics.set_group_status("hub-core", "WARNING")
    metrics.WEBHOOKS_RECEIVED.labels(connector="shopify", outcome="accepted").inc(3)
    metrics.WEBHOOKS_RECEIVED.labels(connector="shopify", outcome="unauthorized").inc()
    metrics.WEBHOOK_LATENCY.labels(connector="shopify").observe(0.012)
    metrics.RESERVATIONS.labels(outcome="accepted").inc(5)
    metrics.RESERVATIONS.labels(outcome="rejected").inc(2)
    metrics.OVERSELL_REFUSED.inc(2)
    metrics.MESSAGES_PROCESSED.labels(consumer="core", type="hub.order.placed.v1").inc(7)
    metrics.CORE_BATCH_SECONDS.observe(0.004)
    metrics.CORE_BATCH_SIZE.observe(120)
    metrics.STOCK_PUSHES.labels(account="acme", outcome="ok").inc()
    metrics.STOCK_PUSH_LATENCY.labels(account="acme").observe(0.3)
    metrics.OUTBOX_BACKLOG.set(11)
    metrics.OUTBOX_OLDEST_AGE.set(1.5)
    metrics.DLQ_MESSAGES.set(1)
    metrics.DEAD_LETTERS.labels(topic="hub.orders.v1", reason="invalid").inc()
    metrics.CONNECTOR_HEALTHY.labels(account="acme", connector="shopify").set(1)
    metrics.VOUCHERS_ISSUED.inc()
    metrics.PURCHASE_ORDERS_ISSUED.inc()
    return metrics.exposition().decode()


def test_promtool_accepts_the_exposition(exposition: str) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip(
            "promtool not installed (Debian package prometheus); the parser test still runs"
        )
    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=exposition,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # promtool prints lint findings (bad names, missing help, counters without _total) on stdout.
    assert result.stdout.strip() == "", result.stdout


def test_parser_reads_every_promised_metric_with_its_type_and_labels(exposition: str) -> None:
    families = {f.name: f for f in text_string_to_metric_families(exposition)}
    for name, (kind, labels) in EXPECTED.items():
        assert name in families, f"{name} missing from /metrics"
        family = families[name]
        assert family.type == kind, f"{name} is a {family.type}, expected {kind}"
        assert family.documentation, f"{name} has no help text"
        sample_labels = {
            key for s in family.samples for key in s.labels if key not in {"le", "quantile"}
        }
        assert sample_labels == labels, f"{name} labels {sample_labels} != {labels}"


def test_sample_values_are_rendered_as_set(exposition: str) -> None:
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(exposition)
        for s in f.samples
    }
    lag = (("group", "hub-core"), ("partition", "0"), ("topic", "hub.orders.v1"))
    assert samples[("kafka_consumergroup_group_lag", lag)] == 42
    assert samples[("kafka_consumergroup_group_lag_seconds", lag)] == 3.5
    assert samples[("kafka_consumergroup_group_sum_lag", (("group", "hub-core"),))] == 49
    assert samples[("hub_reservations_total", (("outcome", "rejected"),))] == BEFORE["rejected"] + 2
    assert samples[("hub_oversell_attempts_refused_total", ())] == BEFORE["refused"] + 2
    assert samples[("hub_core_batch_size_count", ())] == BEFORE["batches"] + 1
    assert samples[("hub_outbox_backlog", ())] == 11


def test_group_status_is_one_hot(exposition: str) -> None:
    status = {
        s.labels["status"]: s.value
        for f in text_string_to_metric_families(exposition)
        if f.name == "hub_consumergroup_status"
        for s in f.samples
        if s.labels["group"] == "hub-core"
    }
    assert status == {name: (1.0 if name == "WARNING" else 0.0) for name in metrics.GROUP_STATUSES}


def test_unknown_group_status_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown consumer group status"):
        metrics.set_group_status("hub-core", "FINE")


def test_exposition_does_not_use_the_global_registry() -> None:
    from prometheus_client import REGISTRY as GLOBAL

    assert GLOBAL.get_sample_value("hub_outbox_backlog") is None
    assert metrics.CONTENT_TYPE.startswith("text/plain")
