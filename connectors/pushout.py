"""Stock push-out: the newest available-to-sell per (account, SKU) to each shop, independently.

Kafka-independent: the caller feeds `StockLevelChanged` messages in with `offer` (or
`offer_level`, which fans a level out to every account selling on its channel). Per account:

- coalescing: only the newest version per SKU waits to be sent; an older or repeated version is
  dropped on arrival, and a newer one replaces what is waiting (even while a push is in flight);
- one worker task per account, so a slow or failing shop never holds up another;
- pending SKUs go to the client's `set_stock` in batches;
- transient failures (`ConnectorError(retryable=True)`, timeouts, anything unexpected) are retried
  with capped exponential backoff until they succeed or a newer version supersedes them: stock must
  converge, so a transient failure is never dropped;
- permanent failures (a 4xx, an unknown SKU) go to `on_failure` (the caller sends them to the DLQ);
  the failed version is forgotten, so replaying it from the DLQ once the cause is fixed pushes it;
- `on_latency(account, seconds, count)` gets, per successful batch, the time from the oldest
  offer in it to the platform's confirmation;
- a level may come with the correlation ids of the orders that changed it; coalesced versions
  pool theirs (newest last, at most `MAX_CAUSES`), and the push's log line names them. The
  account workers run in a context of their own, so the log context of whoever offered first
  never sticks to a worker's lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field

import structlog

from connectors.base import ShopClient
from connectors.errors import ConnectorError, UnknownAccount
from schemas.levels import StockLevelChanged

log = structlog.get_logger(__name__)
MAX_CAUSES = 10
MAX_LOGGED = 20


@dataclass(frozen=True, slots=True)
class PushFailure:
    """A level that can never be pushed as is: the caller dead-letters it with the reason."""

    account: str
    level: StockLevelChanged
    reason: str
    status: int | None = None
    correlation_ids: tuple[str, ...] = ()


FailureCallback = Callable[[PushFailure], Awaitable[None] | None]
LatencyCallback = Callable[[str, float, int], None]


@dataclass
class _Queued:
    level: StockLevelChanged
    offered_at: float
    correlation_ids: tuple[str, ...] = ()


@dataclass
class _Account:
    client: ShopClient
    channel: str | None
    pending: dict[str, _Queued] = field(default_factory=dict)
    seen: dict[str, int] = field(default_factory=dict)  # newest version offered per SKU
    pushed: dict[str, int] = field(default_factory=dict)  # newest version confirmed per SKU
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class StockPushOut:
    def __init__(
        self,
        clients: Mapping[str, ShopClient],
        *,
        channels: Mapping[str, str] | None = None,
        on_failure: FailureCallback | None = None,
        on_latency: LatencyCallback | None = None,
        batch_size: int = 100,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
    ) -> None:
        self._accounts = {
            name: _Account(client, (channels or {}).get(name)) for name, client in clients.items()
        }
        for state in self._accounts.values():
            state.idle.set()
        self.on_failure = on_failure
        self.on_latency = on_latency
        self.batch_size = batch_size
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self._closed = False

    # --- feeding ----------------------------------------------------------------------------------

    def offer(
        self, account: str, level: StockLevelChanged, correlation_ids: tuple[str, ...] = ()
    ) -> bool:
        """Queue a level for an account; False if it is not newer than what was offered before."""
        state = self._accounts.get(account)
        if state is None:
            raise UnknownAccount(account)
        if level.version <= state.seen.get(level.sku, 0):
            return False
        state.seen[level.sku] = level.version
        previous = state.pending.get(level.sku)
        offered_at = previous.offered_at if previous else time.monotonic()
        causes = _pool(previous.correlation_ids if previous else (), correlation_ids)
        state.pending[level.sku] = _Queued(level, offered_at, causes)
        state.idle.clear()
        state.wake.set()
        self._ensure_worker(account, state)
        return True

    def offer_level(
        self, level: StockLevelChanged, correlation_ids: tuple[str, ...] = ()
    ) -> list[str]:
        """Offer a level to every account selling on its channel; the accounts that took it."""
        return [
            name
            for name, state in self._accounts.items()
            if state.channel == level.channel and self.offer(name, level, correlation_ids)
        ]

    def pending(self, account: str) -> dict[str, int]:
        """What waits to be pushed for an account: SKU → available."""
        return {s: q.level.available for s, q in self._accounts[account].pending.items()}

    def pushed_version(self, account: str, sku: str) -> int:
        return self._accounts[account].pushed.get(sku, 0)

    # --- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        for name, state in self._accounts.items():
            self._ensure_worker(name, state)

    async def drain(self, *accounts: str) -> None:
        """Wait until the accounts (default: all) have nothing pending or in flight.

        Bound it with `asyncio.timeout`: a shop that keeps failing transiently never drains.
        """
        names = accounts or tuple(self._accounts)
        await asyncio.gather(*(self._accounts[n].idle.wait() for n in names))

    async def stop(self) -> None:
        self._closed = True
        tasks = [s.task for s in self._accounts.values() if s.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for state in self._accounts.values():
            state.task = None

    def _ensure_worker(self, name: str, state: _Account) -> None:
        if self._closed or (state.task is not None and not state.task.done()):
            return
        with contextlib.suppress(RuntimeError):  # no loop yet: `start()` creates the worker
            state.task = asyncio.get_running_loop().create_task(
                self._run(name, state), name=f"stock-push:{name}", context=contextvars.Context()
            )

    # --- the worker -------------------------------------------------------------------------------

    async def _run(self, name: str, state: _Account) -> None:
        backoff = self.backoff_initial
        while True:
            if not state.pending:
                state.idle.set()
                await state.wake.wait()
            state.wake.clear()
            if not state.pending:
                continue
            skus = list(state.pending)[: self.batch_size]
            batch = {sku: state.pending.pop(sku) for sku in skus}
            try:
                result = await state.client.set_stock(
                    {sku: q.level.available for sku, q in batch.items()}
                )
            except ConnectorError as exc:
                if exc.retryable:
                    backoff = await self._requeue(name, state, batch, exc, backoff)
                    continue
                for q in batch.values():
                    await self._fail(name, state, q, exc.message, exc.status)
                backoff = self.backoff_initial
                continue
            except Exception as exc:
                backoff = await self._requeue(name, state, batch, exc, backoff)
                continue
            backoff = self.backoff_initial
            for sku, reason in result.failed.items():
                if sku in batch:
                    await self._fail(name, state, batch[sku], reason, None)
            confirmed = [batch[s] for s in result.updated if s in batch]
            if confirmed:
                _log_pushed(name, confirmed)
            for q in confirmed:
                version = max(state.pushed.get(q.level.sku, 0), q.level.version)
                state.pushed[q.level.sku] = version
            if confirmed and self.on_latency is not None:
                oldest = min(q.offered_at for q in confirmed)
                self.on_latency(name, time.monotonic() - oldest, len(confirmed))

    async def _requeue(
        self,
        name: str,
        state: _Account,
        batch: dict[str, _Queued],
        exc: BaseException,
        backoff: float,
    ) -> float:
        for sku, q in batch.items():
            if sku not in state.pending:  # a newer version that arrived meanwhile wins
                state.pending[sku] = q
        log.warning(
            "stock_push.retry",
            account=name,
            skus=len(batch),
            error=repr(exc)[:300],
            wait=backoff,
            **_causes(batch.values()),
        )
        await asyncio.sleep(backoff * (0.5 + random.random() / 2))
        return min(backoff * 2, self.backoff_max)

    async def _fail(
        self,
        name: str,
        state: _Account,
        queued: _Queued,
        reason: str,
        status: int | None,
    ) -> None:
        level = queued.level
        if state.seen.get(level.sku) == level.version and level.sku not in state.pending:
            # Forget the failed version so that replaying it from the DLQ pushes it again.
            state.seen[level.sku] = state.pushed.get(level.sku, 0)
        log.error(
            "stock_push.failed",
            account=name,
            sku=level.sku,
            version=level.version,
            reason=reason,
            status=status,
            **_causes([queued]),
        )
        if self.on_failure is None:
            return
        try:
            failure = PushFailure(name, level, reason, status, queued.correlation_ids)
            outcome = self.on_failure(failure)
            if inspect.isawaitable(outcome):
                await outcome
        except Exception:
            log.exception("stock_push.failure_callback_failed", account=name, sku=level.sku)


def _pool(older: tuple[str, ...], newer: tuple[str, ...]) -> tuple[str, ...]:
    """The correlation ids of coalesced versions: distinct, newest last, at most MAX_CAUSES."""
    if not older:
        return newer[-MAX_CAUSES:]
    pooled = [i for i in older if i not in newer] + list(newer)
    return tuple(pooled[-MAX_CAUSES:])


def _causes(queued: Iterable[_Queued]) -> dict[str, object]:
    """Log fields naming the orders behind a batch: `correlation_ids` (bounded, newest cause of
    each level), and `correlation_id` when there is exactly one."""
    seen: dict[str, None] = {}
    for q in queued:
        for i in q.correlation_ids:
            seen.setdefault(i, None)
    ids = list(seen)
    fields: dict[str, object] = {"correlation_ids": ids[:MAX_LOGGED]}
    if len(ids) > MAX_LOGGED:
        fields["correlation_ids_more"] = len(ids) - MAX_LOGGED
    if len(ids) == 1:
        fields["correlation_id"] = ids[0]
    return fields


def _log_pushed(account: str, confirmed: list[_Queued]) -> None:
    log.info(
        "stock_push.pushed",
        account=account,
        count=len(confirmed),
        levels=[
            {"sku": q.level.sku, "available": q.level.available, "version": q.level.version}
            for q in confirmed[:MAX_LOGGED]
        ],
        **_causes(confirmed),
    )
