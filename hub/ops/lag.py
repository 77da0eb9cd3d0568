"""Consumer lag: offset lag, time lag and a status per group, from periodic samples.

Offset lag of a group on a partition is `end offset - committed offset`, never below 0. A
partition the group has not committed yet counts from the partition's first offset (every hub
consumer starts at "earliest"). The embedded broker (Tansu) reports an end offset that can lag
the real high-water mark by up to one producer batch (it answers with the last batch's first
offset + 1), so its lag figures can be short by up to one batch per partition, and a committed
offset can be *ahead* of the reported end: lag is clamped at 0. Apache Kafka reports the
high-water mark exactly.

**Time lag**, as kafka-lag-exporter estimates it: per partition, a table of (end offset, time)
points, one per poll, oldest first, at most `history` of them. A point is added when the end
offset grows; a run of polls with the same end offset keeps its first and its last sighting only
(the right-hand point moves), so a pause in production neither fills the table nor stretches the
estimate. A point with a smaller end offset than the last one (topic recreated) starts the table
afresh. The time at which the end offset reached the committed offset is interpolated between
the two points around it; below the oldest point it is extrapolated along the line from the
oldest to the newest point. With a single point (or only a flat line) the time of the oldest
point is used: the message was written no later than that, so the figure is a lower bound.
Lag seconds = now - that time, 0 when the offset lag is 0, never negative.

**Status**, after Burrow's evaluation rules, over a sliding window of the last `window` samples
(time, committed offset, end offset) of each partition. Kafka's API has no commit timestamps, so
a poller sees a commit as a change of the committed offset; and since an idle consumer of the
hub commits nothing, the commit clock of a partition restarts whenever its committed offset moves
or its lag is 0 (the consumer was keeping up). Rules, in order, for one partition:

1. current lag 0: **OK** (Burrow: a partition with no lag is never in error);
2. the committed offset went back between two samples of the window: **REWIND** (checked before
   rule 4: the usual rewind is an operator resetting a caught-up group to replay);
3. the commit clock is older than the window's first sample, i.e. the offset has not moved for
   longer than the window spans while lag > 0: **STOP** (Burrow: time since the last commit is
   longer than the window);
4. lag was 0 at some sample of the window: **OK** (it caught up recently);
5. fewer than `min_samples` samples (at least 2): **OK** (not enough evidence to warn);
6. the committed offset did not move over the window: **STALL**;
7. the lag never decreased over the window (each sample >= the previous): **WARNING**;
8. otherwise **OK**.

A group's status is its most severe partition status (OK < WARNING < REWIND < STALL < STOP);
**ERR** when its offsets could not be read at all.
"""

from __future__ import annotations

import contextlib
import time as _time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from hub import metrics

SEVERITY = {"OK": 0, "WARNING": 1, "REWIND": 2, "STALL": 3, "STOP": 4, "ERR": 5}


# --- Status rules ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One poll of one partition for one group: when, where the group was, where the log ended."""

    time: float
    committed: int
    end: int

    @property
    def lag(self) -> int:
        return max(0, self.end - self.committed)


def partition_status(window: Sequence[Sample], *, clock_start: float, min_samples: int = 3) -> str:
    """Burrow's rules (module docstring) for one partition's window, oldest sample first.

    `clock_start` is when the committed offset last moved or the lag was last 0.
    """
    if not window or window[-1].lag == 0:
        return "OK"
    pairs = list(pairwise(window))
    if any(b.committed < a.committed for a, b in pairs):
        return "REWIND"
    if len(window) >= 2 and clock_start < window[0].time:
        return "STOP"
    if any(s.lag == 0 for s in window):
        return "OK"
    if len(window) < max(2, min_samples):
        return "OK"
    if all(b.committed == a.committed for a, b in pairs):
        return "STALL"
    if all(b.lag >= a.lag for a, b in pairs):
        return "WARNING"
    return "OK"


def worst(statuses: Sequence[str]) -> str:
    return max(statuses, key=SEVERITY.__getitem__, default="OK")


# --- Time lag -------------------------------------------------------------------------------------


class OffsetTimeTable:
    """(end offset, time) points of one partition, kafka-lag-exporter style (module docstring)."""

    def __init__(self, limit: int = 60) -> None:
        self.points: deque[tuple[int, float]] = deque(maxlen=max(2, limit))

    def add(self, offset: int, at: float) -> None:
        if self.points:
            last_offset, last_time = self.points[-1]
            if at <= last_time:
                return
            if offset < last_offset:
                self.points.clear()
            elif offset == last_offset and len(self.points) >= 2 and self.points[-2][0] == offset:
                self.points[-1] = (offset, at)
                return
        self.points.append((offset, at))

    def time_of(self, offset: int) -> float | None:
        """Estimated time at which the end offset reached `offset` (None: no points yet)."""
        pts = list(self.points)
        if not pts:
            return None
        for (lo, lt), (ro, rt) in zip(reversed(pts[:-1]), reversed(pts[1:]), strict=True):
            if lo <= offset <= ro:
                return _on_line(lo, lt, ro, rt, offset)
        (fo, ft), (lo_, lt_) = pts[0], pts[-1]
        if offset < fo and lo_ > fo:
            return _on_line(fo, ft, lo_, lt_, offset)
        return ft

    def lag_seconds(self, committed: int, end: int, now: float) -> float:
        if end - committed <= 0:
            return 0.0
        at = self.time_of(committed)
        return 0.0 if at is None else max(0.0, now - at)


def _on_line(lo: int, lt: float, ro: int, rt: float, offset: int) -> float:
    if ro == lo:
        return rt
    return rt - (ro - offset) * (rt - lt) / (ro - lo)


# --- Evaluator ------------------------------------------------------------------------------------


@dataclass
class PartitionLag:
    topic: str
    partition: int
    committed: int | None
    end: int
    lag: int
    lag_seconds: float
    status: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "committed": self.committed,
            "end": self.end,
            "lag": self.lag,
            "lag_seconds": round(self.lag_seconds, 3),
            "status": self.status,
        }


@dataclass
class GroupLag:
    group: str
    status: str
    partitions: list[PartitionLag] = field(default_factory=list)
    error: str | None = None

    @property
    def max_lag(self) -> int:
        return max((p.lag for p in self.partitions), default=0)

    @property
    def max_lag_seconds(self) -> float:
        return max((p.lag_seconds for p in self.partitions), default=0.0)

    @property
    def sum_lag(self) -> int:
        return sum(p.lag for p in self.partitions)

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "max_lag": self.max_lag,
            "max_lag_seconds": round(self.max_lag_seconds, 3),
            "sum_lag": self.sum_lag,
            "error": self.error,
            "partitions": [p.as_dict() for p in self.partitions],
        }


@dataclass
class _PartitionState:
    window: deque[Sample]
    clock_start: float
    committed: int | None = None


class LagEvaluator:
    """Keeps the samples of every group/topic/partition and evaluates them; no I/O."""

    def __init__(self, *, window: int = 10, min_samples: int = 3, history: int = 60) -> None:
        self.window = max(2, window)
        self.min_samples = min_samples
        self.history = history
        self._parts: dict[str, dict[tuple[str, int], _PartitionState]] = {}
        self._tables: dict[tuple[str, int], OffsetTimeTable] = {}

    def observe(
        self,
        group: str,
        topic: str,
        partition: int,
        *,
        at: float,
        committed: int | None,
        end: int,
        start: int = 0,
    ) -> None:
        """Record one poll. `committed` None (or < 0): no commit yet, the group reads from
        `start`, the partition's first offset."""
        position = committed if committed is not None and committed >= 0 else start
        sample = Sample(at, position, end)
        table = self._tables.setdefault((topic, partition), OffsetTimeTable(self.history))
        table.add(end, at)
        parts = self._parts.setdefault(group, {})
        state = parts.get((topic, partition))
        if state is None:
            state = _PartitionState(deque(maxlen=self.window), at)
            parts[(topic, partition)] = state
        previous = state.window[-1] if state.window else None
        if previous is None or previous.committed != position or sample.lag == 0:
            state.clock_start = at
        state.window.append(sample)
        state.committed = committed if committed is not None and committed >= 0 else None

    def evaluate(self, group: str, now: float | None = None) -> GroupLag:
        parts = self._parts.get(group, {})
        if now is None:
            now = max((s.window[-1].time for s in parts.values() if s.window), default=0.0)
        out: list[PartitionLag] = []
        for (topic, partition), state in sorted(parts.items()):
            if not state.window:
                continue
            last = state.window[-1]
            table = self._tables.get((topic, partition)) or OffsetTimeTable(self.history)
            out.append(
                PartitionLag(
                    topic=topic,
                    partition=partition,
                    committed=state.committed,
                    end=last.end,
                    lag=last.lag,
                    lag_seconds=table.lag_seconds(last.committed, last.end, now),
                    status=partition_status(
                        list(state.window),
                        clock_start=state.clock_start,
                        min_samples=self.min_samples,
                    ),
                )
            )
        return GroupLag(group, worst([p.status for p in out]), out)

    def failed(self, group: str, error: str) -> GroupLag:
        """The group could not be read: ERR, with the last known partitions."""
        known = self.evaluate(group)
        return GroupLag(group, "ERR", known.partitions, error)


# --- Monitor --------------------------------------------------------------------------------------


def publish_metrics(result: GroupLag) -> None:
    """Set the kafka-lag-exporter gauges and the status gauge of one group."""
    for p in result.partitions:
        metrics.set_partition_lag(
            result.group, p.topic, p.partition, messages=p.lag, seconds=p.lag_seconds
        )
    metrics.set_group_lag_totals(
        result.group,
        max_messages=result.max_lag,
        max_seconds=result.max_lag_seconds,
        total=result.sum_lag,
    )
    metrics.set_group_status(result.group, result.status)


class LagMonitor:
    """Polls committed and end offsets with aiokafka and feeds a `LagEvaluator`.

    `groups` None: every consumer group the broker lists. `topics` maps a group to the topics it
    consumes; a group without an entry is given every topic on which it has a committed offset.
    Committed offsets are asked for with the partitions named (the embedded broker needs them).
    """

    def __init__(
        self,
        bootstrap: str,
        client_kwargs: Mapping[str, Any] | None = None,
        groups: list[str] | None = None,
        *,
        topics: Mapping[str, Sequence[str]] | None = None,
        window: int = 10,
        min_samples: int = 3,
        clock: Any = _time.time,
    ) -> None:
        self.bootstrap = bootstrap
        self.client_kwargs = dict(client_kwargs or {})
        self.groups = groups
        self.topics = {g: list(t) for g, t in (topics or {}).items()}
        self.evaluator = LagEvaluator(window=window, min_samples=min_samples)
        self.clock = clock
        self.last: dict[str, Any] = {"time": None, "groups": {}}
        self._admin: AIOKafkaAdminClient | None = None
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        try:
            self._admin = AIOKafkaAdminClient(
                bootstrap_servers=self.bootstrap, **self.client_kwargs
            )
            await self._admin.start()
            self._consumer = AIOKafkaConsumer(
                bootstrap_servers=self.bootstrap, enable_auto_commit=False, **self.client_kwargs
            )
            await self._consumer.start()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                await self._consumer.stop()
        if self._admin is not None:
            with contextlib.suppress(Exception):
                await self._admin.close()
        self._admin = self._consumer = None

    async def __aenter__(self) -> LagMonitor:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def poll(self) -> dict[str, Any]:
        """One round for every group: sample, evaluate, set the gauges; returns `snapshot()`.

        When the broker cannot be read at all, every group is reported ERR (never a stale OK).
        """
        assert self._admin is not None and self._consumer is not None, "start() first"
        now = float(self.clock())
        try:
            partitions = {
                t["topic"]: sorted(p["partition"] for p in t["partitions"])
                for t in await self._admin.describe_topics(None)
                if not t.get("error_code") and not t["topic"].startswith("__")
            }
            groups = self.groups
            if groups is None:
                listed = await self._admin.list_consumer_groups()
                groups = sorted(
                    {g for g, proto in listed if proto in ("consumer", "")} | set(self.topics)
                )
        except Exception as exc:
            return self.failed(f"{type(exc).__name__}: {exc}", now)
        results: dict[str, GroupLag] = {}
        for group in groups:
            try:
                await self._sample(group, partitions, now)
                results[group] = self.evaluator.evaluate(group, now)
            except Exception as exc:
                results[group] = self.evaluator.failed(group, f"{type(exc).__name__}: {exc}")
        return self._publish(results, now)

    def failed(self, error: str, now: float | None = None) -> dict[str, Any]:
        """Every group ERR with `error` (the broker could not be read); sets the gauges too."""
        groups = set(self.groups or ()) | set(self.topics) | set(self.last.get("groups", {}))
        results = {g: self.evaluator.failed(g, error) for g in sorted(groups)}
        return self._publish(results, float(self.clock()) if now is None else now)

    def _publish(self, results: dict[str, GroupLag], now: float) -> dict[str, Any]:
        for result in results.values():
            publish_metrics(result)
        self.last = {
            "time": datetime.fromtimestamp(now, UTC).isoformat(),
            "groups": {g: r.as_dict() for g, r in results.items()},
        }
        return self.last

    def snapshot(self) -> dict[str, Any]:
        """The latest poll, JSON-ready: `{"time", "groups": {group: {status, max_lag, …}}}`."""
        return self.last

    async def _sample(self, group: str, partitions: Mapping[str, list[int]], now: float) -> None:
        assert self._admin is not None and self._consumer is not None
        hinted = self.topics.get(group)
        names = [t for t in (hinted or partitions) if t in partitions]
        tps = [TopicPartition(t, p) for t in names for p in partitions[t]]
        if not tps:
            return
        offsets = await self._admin.list_consumer_group_offsets(group, partitions=tps)
        committed = {tp: om.offset for tp, om in offsets.items()}
        if hinted is None:
            used = {tp.topic for tp, off in committed.items() if off >= 0}
            tps = [tp for tp in tps if tp.topic in used]
        if not tps:
            return
        ends = await self._consumer.end_offsets(tps)
        fresh = [tp for tp in tps if committed.get(tp, -1) < 0]
        starts = await self._consumer.beginning_offsets(fresh) if fresh else {}
        for tp in tps:
            self.evaluator.observe(
                group,
                tp.topic,
                tp.partition,
                at=now,
                committed=committed.get(tp, -1),
                end=int(ends[tp]),
                start=int(starts.get(tp, 0)),
            )
