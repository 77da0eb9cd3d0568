"""Stock push-out: the newest available-to-sell per (account, SKU) to each shop, independently.

Kafka-independent: the caller feeds `StockLevelChanged` messages in with `offer` (or
`offer_level`, which fans a level out to every account selling on its channel). Per account:

- coalescing: only the newest version per SKU waits to be sent; an older or repeated version is
  dropped on arrival, and a newer one replaces what is waiting (even while a push is in flight);
- one worker task per account, so a slow or failing shop never holds up another;
- pending SKUs go to the client's `set_stock` in batches;
- transient failures (`ConnectorError(retryable=True)`, timeouts, anything unexpected) are retried
  with capped exponential backoff until they succeed or a newer version supersedes them: stock must
  converge, so a transient failure is never dropped. A failure that set some SKUs first says
  which (`ConnectorError.partial`), and only the others are retried;
- permanent failures (a 4xx, an unknown SKU) go to `on_failure` (the caller sends them to the DLQ);
  the failed version is forgotten, so replaying it from the DLQ once the cause is fixed pushes it;
- `on_latency(account, seconds, count)` gets, per successful batch, the time from the oldest
  offer in it to the platform's confirmation;
- a level that cannot be pushed and whose report fails (the dead-letter topic unreachable) is
  retried like a transient failure, so it is reported or pushed, never dropped;
- a level may come with the correlation ids of the orders that changed it; coalesced versions
  pool theirs (newest last, at most `MAX_CAUSES`), and the push's log line names them. The
  account workers run in a context of their own, so the log context of whoever offered first
  never sticks to a worker's lines;
- a level may come with its origin, a (lane, position) pair such as a Kafka partition and an
  offset. `low_water(lane)` (`low_waters()` for all) is the earliest position in a lane whose
  level is still waiting or in flight for some account: a consumer commits no further, so
  whoever reads the lane next pushes what this one had not. `forget(lanes)` drops what came
  from lanes this process no longer owns, including a batch in flight that then fails, and
  `release(lanes, grace)` cancels a push from them still in flight after `grace` seconds, so a
  retry never lands after the new owner's newer level.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import random
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping
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
Origin = tuple[Hashable, int]  # (lane, position): a partition and an offset, say


@dataclass
class _Queued:
    level: StockLevelChanged
    offered_at: float
    correlation_ids: tuple[str, ...] = ()
    origin: Origin | None = None
    epoch: int = 0  # the lane's epoch when offered; `forget` moves it on

    @property
    def lane(self) -> Hashable | None:
        return self.origin[0] if self.origin is not None else None


@dataclass
class _Account:
    client: ShopClient
    channel: str | None
    pending: dict[str, _Queued] = field(default_factory=dict)
    inflight: dict[str, _Queued] = field(default_factory=dict)
    seen: dict[str, int] = field(default_factory=dict)  # newest version offered per SKU
    pushed: dict[str, int] = field(default_factory=dict)  # newest version confirmed per SKU
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    landed: asyncio.Event = field(default_factory=asyncio.Event)  # nothing in flight
    retrying: bool = False  # its last push failed: it waits out a backoff
    pushing_since: float = float("inf")  # when its push in flight began (monotonic)
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
            state.landed.set()
        self.on_failure = on_failure
        self.on_latency = on_latency
        self.batch_size = batch_size
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self._closed = False
        self._epochs: dict[Hashable, int] = {}
        self._failed = asyncio.Event()  # a push failed since `calm` looked

    # --- feeding ----------------------------------------------------------------------------------

    def offer(
        self,
        account: str,
        level: StockLevelChanged,
        correlation_ids: tuple[str, ...] = (),
        origin: Origin | None = None,
    ) -> bool:
        """Queue a level for an account; False if it is not newer than what was offered before.

        A newer level replaces a waiting one with its own origin: read again from there, the
        lane brings it, and the replaced one no longer matters."""
        state = self._accounts.get(account)
        if state is None:
            raise UnknownAccount(account)
        # `pushed` too: a push that landed after `forget` lowered `seen` is not undone by the
        # older version read again.
        if level.version <= max(state.seen.get(level.sku, 0), state.pushed.get(level.sku, 0)):
            return False
        state.seen[level.sku] = level.version
        previous = state.pending.get(level.sku)
        offered_at = previous.offered_at if previous else time.monotonic()
        causes = _pool(previous.correlation_ids if previous else (), correlation_ids)
        epoch = self._epochs.get(origin[0], 0) if origin is not None else 0
        state.pending[level.sku] = _Queued(level, offered_at, causes, origin, epoch)
        state.idle.clear()
        state.wake.set()
        self._ensure_worker(account, state)
        return True

    def offer_level(
        self,
        level: StockLevelChanged,
        correlation_ids: tuple[str, ...] = (),
        origin: Origin | None = None,
    ) -> list[str]:
        """Offer a level to every account selling on its channel; the accounts that took it."""
        return [
            name
            for name, state in self._accounts.items()
            if state.channel == level.channel and self.offer(name, level, correlation_ids, origin)
        ]

    def low_water(self, lane: Hashable) -> int | None:
        """The earliest position in a lane whose level waits or is in flight for any account;
        None when nothing from the lane is unsettled."""
        return self.low_waters().get(lane)

    def low_waters(self) -> dict[Hashable, int]:
        """`low_water` of every lane with something unsettled, in one pass."""
        low: dict[Hashable, int] = {}
        for state in self._accounts.values():
            for queued in (*state.pending.values(), *state.inflight.values()):
                origin = queued.origin
                if origin is not None and self._current(queued):
                    lane, position = origin
                    if position < low.get(lane, position + 1):
                        low[lane] = position
        return low

    def forget(self, lanes: Iterable[Hashable]) -> int:
        """Drop every level that came from these lanes, waiting or (once it fails) in flight;
        the number of waiting levels dropped. Their versions count as never seen, so the lane
        read again later offers them again."""
        gone = set(lanes)
        for lane in gone:
            self._epochs[lane] = self._epochs.get(lane, 0) + 1
        dropped = 0
        for state in self._accounts.values():
            for sku, queued in list(state.pending.items()):
                if queued.lane in gone:
                    del state.pending[sku]
                    state.seen[sku] = state.pushed.get(sku, 0)
                    dropped += 1
            for sku, queued in state.inflight.items():
                if queued.lane in gone:
                    state.seen[sku] = state.pushed.get(sku, 0)
            if not state.pending and not state.inflight:
                state.idle.set()
        return dropped

    async def release(self, lanes: Iterable[Hashable], grace: float) -> None:
        """After `forget`: give pushes in flight from these lanes `grace` seconds to finish, then
        cancel them (a client retrying for a minute must not land after the lanes' new owner).
        The other levels of a cancelled batch wait again."""
        gone = set(lanes)

        def holding() -> list[tuple[str, _Account]]:
            return [
                (name, state)
                for name, state in self._accounts.items()
                if any(q.lane in gone for q in state.inflight.values())
            ]

        waits = [asyncio.ensure_future(state.landed.wait()) for _, state in holding()]
        if waits:
            await asyncio.wait(waits, timeout=grace)
            for wait in waits:
                wait.cancel()
        cancelled: list[asyncio.Task[None]] = []
        for name, state in holding():
            task = state.task
            if task is None or task.done():
                continue
            task.cancel()
            task.add_done_callback(self._restart(name, state))
            cancelled.append(task)
            log.warning("stock_push.cancelled_at_handover", account=name)
        if cancelled:
            await asyncio.wait(cancelled, timeout=1.0)

    def _restart(self, name: str, state: _Account) -> Callable[[asyncio.Task[None]], None]:
        """Once a cancelled account worker has finished (its batch's other levels waiting
        again), a new one takes what waits; never two at once."""

        def done(task: asyncio.Task[None]) -> None:
            if self._closed:
                return
            if state.pending:
                self._ensure_worker(name, state)
            else:
                state.idle.set()

        return done

    def _current(self, queued: _Queued) -> bool:
        """Whether a level's lane is still this process's: not forgotten since it was offered."""
        return queued.lane is None or self._epochs.get(queued.lane, 0) == queued.epoch

    def pending(self, account: str) -> dict[str, int]:
        """What waits to be pushed for an account: SKU → available."""
        return {s: q.level.available for s, q in self._accounts[account].pending.items()}

    def pushed_version(self, account: str, sku: str) -> int:
        return self._accounts[account].pushed.get(sku, 0)

    # --- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        for name, state in self._accounts.items():
            self._ensure_worker(name, state)

    async def calm(self, accounts: Iterable[str], *, patience: float = 2.0) -> None:
        """Wait until each of the accounts has nothing pending or in flight, is retrying after
        a failed push, or has had one push in flight for `patience` seconds: one retrying (a
        shop down) or slow (answering 429 while the client honours its Retry-After) would hold
        up whoever waits on it for its whole backoff. Bound it with `asyncio.timeout`."""
        names = list(accounts)
        while True:
            self._failed.clear()
            now = time.monotonic()
            waiting = [
                s
                for n in names
                if not (s := self._accounts[n]).retrying
                and not s.idle.is_set()
                and now - s.pushing_since < patience
            ]
            if not waiting:
                return
            waits = [asyncio.ensure_future(s.idle.wait()) for s in waiting]
            waits.append(asyncio.ensure_future(self._failed.wait()))
            first = min(s.pushing_since for s in waiting) + patience - now
            # (A push not started yet has no time: look again after `patience`.)
            timeout = max(first, 0.0) if first != float("inf") else patience
            try:
                await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()

    def settled(self, accounts: Iterable[str]) -> bool:
        """Whether the accounts have nothing pending or in flight."""
        return all(self._accounts[n].idle.is_set() for n in accounts)

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
            state.inflight = batch
            state.landed.clear()
            state.pushing_since = time.monotonic()
            try:
                backoff = await self._push(name, state, batch, backoff)
            except asyncio.CancelledError:
                for sku, q in state.inflight.items():  # stopped mid-push: owed again
                    if sku not in state.pending and self._current(q):
                        state.pending[sku] = q
                raise
            finally:
                state.inflight = {}
                state.landed.set()
                state.pushing_since = float("inf")

    async def _push(
        self, name: str, state: _Account, batch: dict[str, _Queued], backoff: float
    ) -> float:
        """Push one batch; the backoff for the next one."""
        try:
            result = await state.client.set_stock(
                {sku: q.level.available for sku, q in batch.items()}
            )
        except ConnectorError as exc:
            partial = exc.partial
            if partial is not None:  # some SKUs were settled before it failed
                self._confirm(name, state, batch, partial.updated)
                unreported = await self._refused(name, state, batch, partial.failed)
                rest = {
                    s: q
                    for s, q in batch.items()
                    if s not in partial.updated and s not in partial.failed
                }
            else:
                unreported, rest = {}, batch
            if exc.retryable:
                owed = {**rest, **unreported}
                if exc.contended:  # the shop is well: soon again, and the backoff stays down
                    await self._requeue(name, state, owed, exc, self.backoff_initial)
                    return self.backoff_initial
                return await self._requeue(name, state, owed, exc, backoff)
            unreported |= await self._refused(
                name, state, rest, dict.fromkeys(rest, exc.message), exc.status
            )
            if unreported:
                return await self._requeue(name, state, unreported, exc, backoff)
            return self.backoff_initial
        except Exception as exc:
            return await self._requeue(name, state, batch, exc, backoff)
        self._confirm(name, state, batch, result.updated)
        unreported = await self._refused(name, state, batch, result.failed)
        if unreported:
            reason = RuntimeError("the refusal could not be reported")
            return await self._requeue(name, state, unreported, reason, backoff)
        state.retrying = False
        return self.backoff_initial

    async def _refused(
        self,
        name: str,
        state: _Account,
        batch: dict[str, _Queued],
        failed: Mapping[str, str],
        status: int | None = None,
    ) -> dict[str, _Queued]:
        """Report the batch's levels the shop refused for good; those whose report failed."""
        return {
            sku: batch[sku]
            for sku, reason in failed.items()
            if sku in batch and not await self._fail(name, state, batch[sku], reason, status)
        }

    def _confirm(
        self, name: str, state: _Account, batch: dict[str, _Queued], updated: Iterable[str]
    ) -> None:
        """Record the levels the shop took."""
        confirmed = [batch[s] for s in updated if s in batch]
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
            # A newer version that arrived meanwhile wins; a lane forgotten meanwhile is
            # another process's now, and its newer level must not be overtaken by this one.
            if sku not in state.pending and self._current(q):
                state.pending[sku] = q
        state.inflight = {}  # what is still owed waits in `pending` through the backoff
        state.landed.set()
        state.retrying = True
        self._failed.set()
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
    ) -> bool:
        """Report a level that cannot be pushed; False if the report itself failed, so the
        caller retries the level rather than lose it."""
        level = queued.level
        log.error(
            "stock_push.failed",
            account=name,
            sku=level.sku,
            version=level.version,
            reason=reason,
            status=status,
            **_causes([queued]),
        )
        if not self._current(queued):
            return True  # its lane's new owner reads it again and reports it
        if self.on_failure is not None:
            try:
                failure = PushFailure(name, level, reason, status, queued.correlation_ids)
                outcome = self.on_failure(failure)
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception:
                log.exception("stock_push.failure_callback_failed", account=name, sku=level.sku)
                return False
        if state.seen.get(level.sku) == level.version and level.sku not in state.pending:
            # Forget the failed version so that replaying it from the DLQ pushes it again.
            state.seen[level.sku] = state.pushed.get(level.sku, 0)
        return True


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
