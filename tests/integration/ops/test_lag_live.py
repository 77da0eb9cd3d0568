"""A paused core on the real broker: `hub lag --json` and `/metrics` show the unread orders and a
non-OK status, and both return to 0 and OK once the core consumes again."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from hub import metrics
from hub.app import Runtime
from hub.config import ChannelRule, HubConfig, Settings
from hub.core.consumer import CORE_TOPICS
from hub.ops.lag import LagMonitor
from schemas import topics
from tests.builders import counted, place

PAUSED_ORDERS = 12


def _settings(bootstrap: str, tmp_path) -> Settings:
    s = Settings(
        kafka_bootstrap=bootstrap,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}",
        var_dir=tmp_path / "var",
        core_group=f"core-{uuid.uuid4().hex[:6]}",
        consumer_session_timeout_ms=6000,
        topic_partitions=4,
    )
    s.__dict__["hub"] = HubConfig(channels={"online": ChannelRule()})
    return s


async def _until(predicate, limit: float = 30.0) -> Any:
    start = time.monotonic()
    while time.monotonic() - start < limit:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(0.2)
    raise AssertionError("condition not reached in time")


async def _hub_lag(s: Settings, *args: str) -> dict[str, Any]:
    """`hub lag --json …` as an operator runs it, in a thread (the CLI runs its own loop)."""
    env = {"HUB_KAFKA_BOOTSTRAP": s.kafka_bootstrap or "", "HUB_CORE_GROUP": s.core_group}
    result = await asyncio.to_thread(
        CliRunner().invoke, _cli_app(), ["lag", "--json", *args], env=env
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _cli_app() -> Any:
    from hub.cli.main import app

    return app


def _gauges(group: str) -> dict[tuple[str, str], float]:
    """(metric, partition or status) -> value for one group, from the parsed exposition."""
    out: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for s in family.samples:
            if s.labels.get("group") != group:
                continue
            detail = s.labels.get("status") or (
                f"{s.labels['topic']}/{s.labels['partition']}" if "topic" in s.labels else ""
            )
            out[(s.name, detail)] = s.value
    return out


@pytest.fixture(autouse=True)
def _quiet_cli_logging(monkeypatch, hub_env):
    # Logging bound to the runner's captured stderr would outlive the test.
    monkeypatch.setattr("hub.cli.common.configure_logging", lambda *a, **k: None)


async def test_paused_core_shows_lag_and_a_non_ok_status_then_recovers(kafka, tmp_path):
    s = _settings(kafka.bootstrap, tmp_path)
    group = s.core_group
    rt = Runtime(s)
    await rt.start({"core", "relay"})
    resumed: Runtime | None = None
    try:
        assert rt.publisher is not None
        await rt.publisher.publish([counted("A", 1000)])

        async def counted_in() -> bool:
            return rt.totals.applied >= 1

        await _until(counted_in)
        # caught up before the pause (on a shared broker, earlier tests' messages too)
        async with LagMonitor(kafka.bootstrap, None, [group], topics={group: CORE_TOPICS}) as mon:

            async def caught_up() -> bool:
                snap = await mon.poll()
                return snap["groups"][group]["sum_lag"] == 0

            await _until(caught_up)

        for b in rt.brokers:
            await b.stop()
        for i in range(PAUSED_ORDERS):  # one batch each: the broker's end offsets are exact
            await rt.publisher.publish([place(f"acme:{i}", [("A", 1)])])

        paused = await _hub_lag(s, "--group", group, "--samples", "3", "--interval", "0.5")
        g = paused["groups"][group]
        orders = [p for p in g["partitions"] if p["topic"] == topics.ORDERS]
        stock = [p for p in g["partitions"] if p["topic"] == topics.STOCK_EVENTS]
        assert sum(p["lag"] for p in orders) == PAUSED_ORDERS
        assert all(p["lag"] == 0 for p in stock)
        assert g["sum_lag"] == PAUSED_ORDERS
        assert g["max_lag"] == max(p["lag"] for p in orders) > 0
        assert all(p["end"] - (p["committed"] or 0) == p["lag"] for p in orders)
        # the offset stood still over every sample while orders waited
        assert g["status"] in ("STALL", "STOP")
        assert 0 < g["max_lag_seconds"] < 30

        gauges = _gauges(group)
        assert gauges[("kafka_consumergroup_group_sum_lag", "")] == PAUSED_ORDERS
        assert gauges[("kafka_consumergroup_group_max_lag", "")] == g["max_lag"]
        per_partition = {
            k[1]: v for k, v in gauges.items() if k[0] == "kafka_consumergroup_group_lag"
        }
        assert sum(v for k, v in per_partition.items() if k.startswith(topics.ORDERS)) == (
            PAUSED_ORDERS
        )
        assert gauges[("hub_consumergroup_status", g["status"])] == 1
        assert gauges[("hub_consumergroup_status", "OK")] == 0
        assert gauges[("kafka_consumergroup_group_max_lag_seconds", "")] > 0

        # without --group: every group the broker knows, the core's among them
        listed = await _hub_lag(s, "--samples", "1")
        assert listed["groups"][group]["sum_lag"] == PAUSED_ORDERS

        # consuming again: a new core of the same group picks up where the paused one stood
        resumed = Runtime(s)
        await resumed.start({"core"})

        async def drained() -> dict[str, Any] | None:
            snap = await _hub_lag(s, "--group", group, "--samples", "1")
            return snap if snap["groups"][group]["sum_lag"] == 0 else None

        after = (await _until(drained, 45))["groups"][group]
        assert after["status"] == "OK"
        assert after["max_lag_seconds"] == 0
        assert resumed.totals.accepted == PAUSED_ORDERS
        gauges = _gauges(group)
        assert gauges[("kafka_consumergroup_group_sum_lag", "")] == 0
        assert gauges[("hub_consumergroup_status", "OK")] == 1
        assert gauges[("hub_consumergroup_status", g["status"])] == 0
        # FastStream's own per-handler figures, on the same exposition
        handled = {
            (s.name, s.labels.get("handler")): s.value
            for family in text_string_to_metric_families(metrics.exposition().decode())
            for s in family.samples
            if s.name.startswith("faststream_")
        }
        core_handler = [h for n, h in handled if n == "faststream_received_messages_total"]
        assert any(h and topics.ORDERS in h for h in core_handler), core_handler
        assert any(
            n == "faststream_received_processed_messages_duration_seconds_count" and v > 0
            for (n, _), v in handled.items()
        )
    finally:
        if resumed is not None:
            await resumed.stop()
        await rt.stop()


def test_hub_lag_says_when_the_broker_is_unreachable_and_exits_1(monkeypatch):
    from hub.kafka.embedded import free_port

    monkeypatch.setenv("HUB_KAFKA_BOOTSTRAP", f"127.0.0.1:{free_port()}")
    result = CliRunner().invoke(_cli_app(), ["lag", "--json", "--samples", "1"])
    assert result.exit_code == 1
    assert "broker unreachable" in result.stderr
    assert result.stdout == ""  # no half JSON document for a script to parse
