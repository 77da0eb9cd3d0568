"""What the operators' API and the dashboard read: the latest lag snapshot and a short history
of aggregate figures, refreshed by `lag_loop` while the runtime runs.

Only aggregates live here (counts, rates, statuses, group and topic names): no message bytes,
no error texts, no account credentials, nothing about a customer.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

import structlog
from sqlalchemy import func, select

from hub import metrics
from hub.kafka import clients
from hub.ops.lag import LagMonitor
from hub.store.models import DeadLetter, OutboxRow

log = structlog.get_logger("hub.ops")

HISTORY = 360  # points: 30 minutes at the default 5-second interval


@dataclass
class OpsState:
    """The latest lag snapshot and the recent history of aggregate figures."""

    lag: dict[str, Any] = field(default_factory=lambda: {"time": None, "groups": {}})
    history: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=HISTORY))
    running: bool = False  # a `lag_loop` keeps `lag` fresh
    _previous: dict[str, float] = field(default_factory=dict)

    def point(
        self, now: float, totals: dict[str, Any], outbox: int | None, dlq: int | None
    ) -> dict[str, Any]:
        """Append one history point; rates are per second since the previous point."""
        push_sum, push_count = _push_latency()
        prev = self._previous
        elapsed = now - prev["time"] if prev else 0.0

        def rate(name: str, value: float) -> float:
            if not prev or elapsed <= 0:
                return 0.0
            return max(0.0, (value - prev[name]) / elapsed)

        push_n = push_count - prev.get("push_count", 0.0)
        point = {
            "t": round(now, 3),
            "lag": {g: v["max_lag"] for g, v in self.lag.get("groups", {}).items()},
            "status": {g: v["status"] for g, v in self.lag.get("groups", {}).items()},
            "applied_per_s": round(rate("applied", totals["applied"]), 3),
            "accepted_per_s": round(rate("accepted", totals["accepted"]), 3),
            "rejected_per_s": round(rate("rejected", totals["rejected"]), 3),
            "push_latency_s": (
                round((push_sum - prev.get("push_sum", 0.0)) / push_n, 4)
                if prev and push_n > 0
                else None
            ),
            "outbox": outbox,
            "dlq": dlq,
        }
        self._previous = {
            "time": now,
            "applied": totals["applied"],
            "accepted": totals["accepted"],
            "rejected": totals["rejected"],
            "push_sum": push_sum,
            "push_count": push_count,
        }
        self.history.append(point)
        return point


def _push_latency() -> tuple[float, float]:
    """Sum and count of every stock push observed so far (all accounts together)."""
    total = count = 0.0
    for family in metrics.STOCK_PUSH_LATENCY.collect():
        for s in family.samples:
            if s.name.endswith("_sum"):
                total += s.value
            elif s.name.endswith("_count"):
                count += s.value
    return total, count


def ops_state(runtime: Any) -> OpsState:
    """The runtime's `OpsState`, created on first use (kept as `runtime.ops`)."""
    state = getattr(runtime, "ops", None)
    if not isinstance(state, OpsState):
        state = OpsState()
        runtime.ops = state
    return state


def monitored_groups(runtime: Any) -> tuple[list[str], dict[str, list[str]]]:
    """The consumer groups this hub watches, and the topics each consumes."""
    from hub.core.consumer import CORE_TOPICS

    group = runtime.settings.core_group
    return [group], {group: list(CORE_TOPICS)}


async def store_figures(runtime: Any) -> tuple[int, int]:
    """Pending outbox rows and dead letters not yet replayed (0, 0 without a store)."""
    if runtime.sessions is None:
        return 0, 0
    async with runtime.sessions() as session:
        outbox = (
            await session.execute(
                select(func.count()).select_from(OutboxRow).where(OutboxRow.sent_at.is_(None))
            )
        ).scalar_one()
        dlq = (
            await session.execute(
                select(func.count()).select_from(DeadLetter).where(DeadLetter.replayed_at.is_(None))
            )
        ).scalar_one()
    return int(outbox), int(dlq)


def totals_dict(runtime: Any) -> dict[str, Any]:
    return asdict(runtime.totals)


async def lag_once(runtime: Any) -> dict[str, Any]:
    """One poll of the watched groups, for a caller that has no `lag_loop` running."""
    groups, topics = monitored_groups(runtime)
    kw = clients.client_kwargs(runtime.settings)
    async with LagMonitor(runtime.bootstrap, kw, groups, topics=topics) as monitor:
        return await monitor.poll()


async def lag_loop(runtime: Any, interval: float = 5.0) -> None:
    """Poll the watched groups every `interval` seconds until `runtime.stop_event` is set,
    keeping the snapshot and a history point on `ops_state(runtime)`; sets the lag gauges and
    `hub_dlq_messages`."""
    state = ops_state(runtime)
    groups, topics = monitored_groups(runtime)
    kw = clients.client_kwargs(runtime.settings)
    monitor = LagMonitor(runtime.bootstrap, kw, groups, topics=topics)
    state.running = True
    try:
        await _loop(runtime, state, monitor, interval)
    finally:
        state.running = False
        await monitor.stop()


async def _loop(runtime: Any, state: OpsState, monitor: LagMonitor, interval: float) -> None:
    from hub.relay import wait_any

    started = False
    while not runtime.stop_event.is_set():
        try:
            if not started:
                await monitor.start()
                started = True
            state.lag = await monitor.poll()
        except Exception as exc:
            log.warning("lag poll failed", error=repr(exc))
            state.lag = monitor.failed(f"{type(exc).__name__}: {exc}")
            with contextlib.suppress(Exception):
                await monitor.stop()
            started = False
        outbox: int | None
        dlq: int | None
        try:
            outbox, dlq = await store_figures(runtime)
            metrics.DLQ_MESSAGES.set(dlq)
        except Exception as exc:
            log.warning("store figures unavailable", error=repr(exc))
            outbox = dlq = None
        state.point(time.time(), totals_dict(runtime), outbox, dlq)
        await wait_any([runtime.stop_event], interval)
