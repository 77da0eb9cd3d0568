"""Burrow's status rules and kafka-lag-exporter's time lag, on crafted sample sequences."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from hub import metrics
from hub.ops.lag import (
    GroupLag,
    LagEvaluator,
    LagMonitor,
    OffsetTimeTable,
    PartitionLag,
    publish_metrics,
)

G = "rules-test"


def _feed(ev: LagEvaluator, rows: list[tuple[float, int | None, int]], partition: int = 0) -> None:
    for at, committed, end in rows:
        ev.observe(G, "t", partition, at=at, committed=committed, end=end)


def _status(rows: list[tuple[float, int | None, int]], **kw: int) -> str:
    ev = LagEvaluator(**kw)
    _feed(ev, rows)
    return ev.evaluate(G).status


# --- status ---------------------------------------------------------------------------------------


def test_no_lag_is_ok_even_when_the_offset_never_moves():
    assert _status([(0, 10, 10), (1, 10, 10), (2, 10, 10), (3, 10, 10)]) == "OK"


def test_lag_shrinking_while_commits_move_is_ok():
    assert _status([(0, 0, 10), (1, 8, 12), (2, 12, 14)]) == "OK"


def test_commits_moving_but_lag_never_decreasing_is_warning():
    assert _status([(0, 0, 10), (1, 5, 20), (2, 10, 30)]) == "WARNING"
    # equal lag counts as "not decreasing" too
    assert _status([(0, 0, 10), (1, 5, 15), (2, 10, 20)]) == "WARNING"


def test_one_decrease_in_the_window_is_enough_to_stay_ok():
    assert _status([(0, 0, 10), (1, 5, 20), (2, 15, 22), (3, 16, 30)]) == "OK"


def test_offset_unchanged_over_the_window_with_lag_is_stall():
    assert _status([(0, 5, 10), (1, 5, 12), (2, 5, 14)]) == "STALL"


def test_offset_unchanged_for_longer_than_the_window_is_stop():
    rows = [(0, 5, 10), (1, 5, 12), (2, 5, 14), (3, 5, 16)]
    assert _status(rows, window=3) == "STOP"
    # the same samples fit in a window of 4: the offset has not been still for longer than it
    assert _status(rows, window=4) == "STALL"


def test_stop_needs_no_growing_lag_only_a_still_offset():
    assert _status([(0, 5, 10), (1, 5, 10), (2, 5, 10), (3, 5, 10)], window=3) == "STOP"


def test_committed_offset_going_back_is_rewind():
    assert _status([(0, 10, 20), (1, 15, 25), (2, 3, 25)]) == "REWIND"
    # even when the group had caught up just before the reset (an operator's replay)
    assert _status([(0, 25, 25), (1, 25, 25), (2, 0, 25)]) == "REWIND"


def test_rewind_leaves_the_window_and_the_status_follows_progress_again():
    rows = [(0, 10, 20), (1, 3, 20), (2, 8, 20), (3, 14, 20), (4, 19, 20)]
    assert _status(rows, window=3) == "OK"


def test_caught_up_earlier_in_the_window_is_ok_until_the_window_passes():
    rows = [(0, 10, 10), (1, 10, 12), (2, 10, 14)]
    assert _status(rows, window=3) == "OK"
    assert _status([*rows, (3, 10, 16)], window=3) == "STOP"


def test_idle_consumer_that_had_nothing_to_commit_is_not_stopped_by_one_new_message():
    rows = [(float(t), 10, 10) for t in range(6)] + [(6.0, 10, 11)]
    assert _status(rows, window=3) == "OK"


def test_too_few_samples_give_no_warning_or_stall():
    assert _status([(0, 5, 10), (1, 5, 12)]) == "OK"
    assert _status([(0, 5, 10), (1, 5, 12)], min_samples=2) == "STALL"
    # one sample is never evidence of a stall, whatever is asked for
    assert _status([(0, 5, 10)], min_samples=1) == "OK"


def test_group_status_is_its_worst_partition_and_err_when_unreadable():
    ev = LagEvaluator()
    _feed(ev, [(0, 5, 10), (1, 5, 12), (2, 5, 14)], partition=0)  # STALL
    _feed(ev, [(0, 0, 10), (1, 5, 20), (2, 10, 30)], partition=1)  # WARNING
    _feed(ev, [(0, 1, 1), (1, 2, 2), (2, 3, 3)], partition=2)  # OK
    result = ev.evaluate(G)
    assert [p.status for p in result.partitions] == ["STALL", "WARNING", "OK"]
    assert result.status == "STALL"
    assert (result.max_lag, result.sum_lag) == (20, 29)
    failed = ev.failed(G, "KafkaConnectionError: gone")
    assert (failed.status, failed.error) == ("ERR", "KafkaConnectionError: gone")
    assert len(failed.partitions) == 3


def test_end_offset_behind_the_committed_offset_counts_as_no_lag():
    """The embedded broker's end offset can trail the high-water mark by one batch."""
    ev = LagEvaluator()
    _feed(ev, [(0, 12, 10), (1, 12, 10), (2, 12, 10)])
    p = ev.evaluate(G).partitions[0]
    assert (p.lag, p.lag_seconds, p.status) == (0, 0.0, "OK")


def test_partition_without_commit_counts_from_its_first_offset():
    ev = LagEvaluator()
    ev.observe(G, "t", 0, at=0, committed=-1, end=10, start=3)
    p = ev.evaluate(G).partitions[0]
    assert (p.committed, p.end, p.lag) == (None, 10, 7)


# --- time lag -------------------------------------------------------------------------------------


@pytest.fixture
def table() -> OffsetTimeTable:
    t = OffsetTimeTable()
    for offset, at in ((100, 1000.0), (200, 1010.0), (300, 1030.0)):
        t.add(offset, at)
    return t


def test_time_of_an_offset_is_interpolated_between_the_points_around_it(table):
    assert table.time_of(150) == 1005.0
    assert table.time_of(250) == 1020.0
    assert table.time_of(200) == 1010.0
    assert table.lag_seconds(150, 300, now=1040.0) == 35.0
    assert table.lag_seconds(250, 300, now=1040.0) == 20.0


def test_offsets_older_than_the_table_are_extrapolated_along_its_whole_trend(table):
    # slope over the table: 30 s for 200 offsets, 0.15 s per offset
    assert table.time_of(50) == pytest.approx(992.5)
    assert table.lag_seconds(50, 300, now=1040.0) == pytest.approx(47.5)


def test_no_offset_lag_means_no_time_lag(table):
    assert table.lag_seconds(300, 300, now=5000.0) == 0.0
    assert table.lag_seconds(310, 300, now=5000.0) == 0.0


def test_a_flat_run_keeps_its_first_and_last_sighting_only():
    t = OffsetTimeTable()
    for offset, at in ((100, 0.0), (100, 10.0), (100, 20.0), (200, 30.0)):
        t.add(offset, at)
    assert list(t.points) == [(100, 0.0), (100, 20.0), (200, 30.0)]
    # production resumed at 20 s, not at 0 s: offset 150 was written at 25 s
    assert t.time_of(150) == 25.0


def test_out_of_order_points_are_ignored_and_a_smaller_end_offset_starts_afresh(table):
    table.add(400, 1030.0)
    assert list(table.points)[-1] == (300, 1030.0)
    table.add(50, 1040.0)
    assert list(table.points) == [(50, 1040.0)]


def test_one_point_gives_a_lower_bound_the_time_it_was_seen():
    t = OffsetTimeTable()
    t.add(50, 40.0)
    assert t.time_of(10) == 40.0
    assert t.lag_seconds(10, 50, now=100.0) == 60.0


def test_the_table_is_a_sliding_window():
    t = OffsetTimeTable(limit=3)
    for i in range(5):
        t.add(100 * (i + 1), 10.0 * i)
    assert list(t.points) == [(300, 20.0), (400, 30.0), (500, 40.0)]


def test_evaluator_reports_time_lag_from_the_end_offsets_it_saw():
    ev = LagEvaluator()
    _feed(ev, [(1000.0, 100, 100), (1010.0, 100, 200), (1030.0, 100, 300)])
    p = ev.evaluate(G).partitions[0]
    # committed 100: the end offset was 100 at 1000 s, evaluated at the last sample, 1030 s
    assert (p.lag, p.lag_seconds) == (200, 30.0)
    assert ev.evaluate(G, now=1045.0).partitions[0].lag_seconds == 45.0


# --- gauges ---------------------------------------------------------------------------------------


def test_publish_metrics_sets_the_lag_exporter_gauges_and_one_hot_status():
    group = "rules-test-metrics"
    publish_metrics(
        GroupLag(
            group,
            "STALL",
            [
                PartitionLag("hub.orders.v1", 0, 3, 10, 7, 2.5, "STALL"),
                PartitionLag("hub.orders.v1", 1, None, 4, 4, 1.0, "STALL"),
            ],
        )
    )
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(metrics.exposition().decode())
        for s in fam.samples
        if s.labels.get("group") == group
    }
    part = (("group", group), ("partition", "0"), ("topic", "hub.orders.v1"))
    assert samples[("kafka_consumergroup_group_lag", part)] == 7
    assert samples[("kafka_consumergroup_group_lag_seconds", part)] == 2.5
    assert samples[("kafka_consumergroup_group_max_lag", (("group", group),))] == 7
    assert samples[("kafka_consumergroup_group_sum_lag", (("group", group),))] == 11
    assert samples[("kafka_consumergroup_group_max_lag_seconds", (("group", group),))] == 2.5
    status = {
        dict(k[1])["status"]: v for k, v in samples.items() if k[0] == "hub_consumergroup_status"
    }
    assert status == {"OK": 0, "WARNING": 0, "STALL": 1, "STOP": 0, "REWIND": 0, "ERR": 0}


def test_a_broker_that_cannot_be_read_turns_every_watched_group_err_not_a_stale_ok():
    group = "rules-test-unreachable"
    monitor = LagMonitor("127.0.0.1:1", None, [group], clock=lambda: 1_700_000_000.0)
    snap = monitor.failed("KafkaConnectionError: Unable to bootstrap")
    assert snap["groups"][group]["status"] == "ERR"
    assert snap["groups"][group]["error"] == "KafkaConnectionError: Unable to bootstrap"
    assert snap["time"] == "2023-11-14T22:13:20+00:00"
    status = {
        s.labels["status"]: s.value
        for fam in text_string_to_metric_families(metrics.exposition().decode())
        for s in fam.samples
        if s.name == "hub_consumergroup_status" and s.labels.get("group") == group
    }
    assert status["ERR"] == 1 and status["OK"] == 0
