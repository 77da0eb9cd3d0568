"""The benchmark keeps the garbage collector out of what it times: the sender's paced window and
the watcher's process. A collection pause there would be counted as the hub's latency."""

from __future__ import annotations

import gc
import os
import weakref

from hub.bench import loadgen
from hub.bench.loadgen import Plan, pause_collector, prepare
from hub.heap import freeze_heap


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def _cycle() -> weakref.ref[_Node]:
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    return weakref.ref(a)


def test_no_collection_in_the_window_nor_after_it_until_the_next_prepare() -> None:
    before = gc.get_stats()[2]["collections"]
    assert gc.isenabled()
    try:
        pause_collector()
        assert not gc.isenabled()
        assert gc.get_freeze_count() > 0  # what existed is out of the scans
        garbage = _cycle()
        churn = [_Node() for _ in range(50_000)]  # far past every generation's threshold
        del churn
        assert garbage() is not None  # nothing collected in the window
        # the one full collection before the window, none inside
        assert gc.get_stats()[2]["collections"] == before + 1
        # The next phase's preparation, outside the window the parent measures, collects what
        # the last one left and freezes its own deliveries.
        plan = Plan("http://127.0.0.1:9/webhooks/shopify/shop", "s", ["SKU-1"], 7, 3, "max", 1.0)
        assert prepare(plan) == os.getpid()
        assert garbage() is None
        assert gc.isenabled()
        assert gc.get_freeze_count() > 0
        assert len(loadgen._prepared[(7, 3)]) == 3
    finally:
        gc.enable()
        gc.unfreeze()
        loadgen._prepared.clear()


def test_freeze_heap_freezes_what_the_process_built() -> None:
    try:
        kept = [_Node() for _ in range(1000)]
        freeze_heap()
        assert gc.get_freeze_count() >= len(kept)
        assert gc.isenabled()
    finally:
        gc.unfreeze()
