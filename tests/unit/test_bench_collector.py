"""The benchmark keeps the garbage collector out of what it times: the sender's paced window and
the watcher's process. A collection pause there would be counted as the hub's latency."""

from __future__ import annotations

import gc
import weakref

from hub.bench.loadgen import collector_paused
from hub.heap import freeze_heap


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def _cycle() -> weakref.ref[_Node]:
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    return weakref.ref(a)


def test_no_collection_inside_the_window_and_its_garbage_collected_after() -> None:
    before = gc.get_stats()[2]["collections"]
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
        assert gc.get_freeze_count() > 0  # what existed is out of the scans
        garbage = _cycle()
        churn = [_Node() for _ in range(50_000)]  # far past every generation's threshold
        del churn
        assert garbage() is not None  # nothing collected in the window
        during = gc.get_stats()[2]["collections"]
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0
    assert garbage() is None  # the window's cycles are collected once it closes
    assert during == before + 1  # the one full collection before the window, none inside


def test_freeze_heap_freezes_what_the_process_built() -> None:
    try:
        kept = [_Node() for _ in range(1000)]
        freeze_heap()
        assert gc.get_freeze_count() >= len(kept)
        assert gc.isenabled()
    finally:
        gc.unfreeze()
