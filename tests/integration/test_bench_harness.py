"""The benchmark harness at a tiny size on SQLite: every figure it promises is in its JSON, and
its correctness checks hold (nothing oversold, every order decided exactly once). No timings are
asserted — those belong to BENCHMARKS.md, not to a test."""

from __future__ import annotations

import json

import pytest

from hub.bench import REQUIRED_KEYS, BenchOptions, run_bench
from hub.bench.report import write_json, write_plot
from hub.bench.runner import raw_limit

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.parametrize(
    ("db", "split"),
    [("sqlite", False), ("postgresql", True)],
    ids=["sqlite-one-process", "postgresql-role-processes"],
)
async def test_tiny_bench_reports_every_figure_and_decides_each_order_once(
    tmp_path, db: str, split: bool
) -> None:
    opts = BenchOptions(
        db=db,
        database_url=(
            "postgresql+asyncpg://postgres@127.0.0.1:5432/hub_bench_test" if split else None
        ),
        split=split,
        orders=200,
        skus=50,
        seconds=1.0,
        out=tmp_path,
        concurrency=8,
        hot_skus=2,
        webhook_pool=50,
    )

    bench = await run_bench(opts)
    result = json.loads(write_json(bench.result, tmp_path).read_text())
    plot = write_plot(bench.tl, tmp_path)

    missing = [k for k in REQUIRED_KEYS if result.get(k) is None]
    assert not missing, f"figures missing from the JSON: {missing}"
    # Latency at half the 1,500/s intake target is measured whatever this machine's maximum.
    assert result["webhook_target_half_rate"] == 750
    assert result["webhook_target_half_p99_ms"] >= result["webhook_target_half_p50_ms"] > 0
    assert result["webhook_target_half_errors"] == 0
    # ... and says when that rate was more than the machine accepted at most (a queue).
    assert result["webhook_target_half_above_max"] is (result["webhooks_per_s"] < 750)
    assert result["raw_limit_orders_per_s"] == raw_limit(
        result["raw_kafka_produce_consume_per_s"],
        result["raw_kafka_produce_consume_after_per_s"],
        result["raw_update_per_s"],
    )
    assert result["oversell"] == 0
    assert result["invariant_problems"] == []
    assert result["orders_decided"] == result["orders_sent"] >= 4 * 200
    assert result["decisions_on_kafka"] == result["orders_sent"]
    assert result["orders_decided_more_than_once"] == 0
    assert result["flash_sold_out_exactly"] is True
    assert result["ok"] is True
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # What each order of each phase cost each part of the system, and the machine's ceiling.
    costs = result["cpu_us_per_order"]
    timed = ["uniform", "zipf", "hot", "flash", "webhooks-max", "webhooks-half"]
    assert set(costs) == {*timed, "webhooks-target-half"}
    if split:
        parts = {"core", "relay", "gateway", "bench", "broker", "postgres"}
    else:
        parts = {"hub + bench", "broker"}
    for phase, cost in costs.items():
        webhooks = phase.startswith("webhooks")
        assert set(cost) == parts | ({"loadgen"} if webhooks else set()) | {"total"}, phase
        assert cost["total"] == pytest.approx(sum(cost.values()) - cost["total"], abs=1)
        # The parts that did the phase's work were seen doing it.
        assert cost["core" if split else "hub + bench"] > 0, phase
        if webhooks:
            assert cost["loadgen"] > 0, phase
            assert cost["gateway" if split else "hub + bench"] > 0, phase
        ceiling = result["cpu_ceiling_orders_per_s"][phase]
        assert ceiling == round(result["cores"] * 1e6 / cost["total"])
    assert "cpu_parts_unread" not in result
    # Without the benchmark's own load only where it is a part of its own.
    assert ("cpu_ceiling_without_load_orders_per_s" in result) is split
    # The WAL each order made PostgreSQL write (SQLite has none to read).
    if split:
        written = result["wal_bytes_per_order"]
        assert set(written) == set(costs)
        # An order, its inbox row and its decision (and their index entries) at least; the
        # position is the server's, so other work on it can only add.
        assert all(each >= 500 for each in written.values()), written
    else:
        assert "wal_bytes_per_order" not in result
    # A level per SKU a batch changed: at most one per single-line order of the uniform phase,
    # and fewer where a few SKUs take the orders and sell out (rejections change no level).
    levels = result["stock_levels_per_order"]
    assert set(levels) == set(costs)
    assert 0 < levels["uniform"] <= 1, levels
    assert levels["hot"] < levels["uniform"], levels
    if split:  # each role's memory, measured in its own process
        assert set(result["role_peak_rss_mb"]) == {"core", "relay", "gateway"}
        assert all(v > 20 for v in result["role_peak_rss_mb"].values())
        assert result["peak_rss_mb"] == max(result["role_peak_rss_mb"].values())


def test_raw_limit_is_the_scarcer_resource_with_the_brokers_better_measurement() -> None:
    assert raw_limit(26_694, 50_714, 59_401) == 50_714  # a dip at the start does not count
    assert raw_limit(68_439, 67_526, 56_813) == 56_813  # the database is the scarcer here
    assert raw_limit(40_000, None, 59_401) == 40_000  # before the second measurement


def test_memory_figures_follow_rss_against_orders_after_the_warm_up() -> None:
    from hub.bench.runner import memory_figures

    # 10,000 orders; RSS climbs during the warm-up, then grows 1 MB per 2,000 orders
    samples = [(float(i), i * 500, 100.0 + (i * 500) / 2000) for i in range(21)]
    fig = memory_figures(samples, 10_000)
    assert fig["core_rss_after_warmup_mb"] == 101.0  # at 2,000 orders
    assert fig["core_rss_end_mb"] == 105.0
    assert fig["core_rss_slope_mb_per_100k_orders"] == 50.0
    assert fig["core_rss_growth_after_warmup_pct"] == round(100 * 4 / 101, 1)
    flat = memory_figures([(float(i), i * 500, 120.0) for i in range(21)], 10_000)
    assert flat["core_rss_slope_mb_per_100k_orders"] == 0.0
    assert memory_figures([(0.0, 0, 90.0)], 10_000)["core_rss_slope_mb_per_100k_orders"] is None
