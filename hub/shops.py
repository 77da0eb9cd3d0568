"""Operations on connected shops: resync, reconcile, push stock now, and the scheduled reconcile.

The CLI (`hub connector …`, `hub reconcile`) and `hub serve` call these. Connectors never touch
the store; these operations read the store (stock, resync cursors) and write the audit log.

- **Resync** pages through the platform's orders and publishes their canonical envelopes. Message
  ids are deterministic, so repeating a resync changes nothing in the core. After every page the
  next page's cursor is stored in `connector_cursors`, so an interrupted resync resumes where it
  stopped. A run that finished keeps the time before which every modified order was read,
  where the next incremental resync starts (`since=last`): the earlier of the run's start and
  the newest modification it saw. Orders are paged in an order a modification does not change
  where the platform allows (WooCommerce: by id), so none is skipped while the run reads.
- **Reconcile** compares the shop's stock with the hub's available-to-sell for the account's
  channel. Only SKUs that both know are drift: a SKU the shop lists but the hub does not manage is
  not the hub's to set, and a hub SKU the shop does not sell is reported, never created. `fix`
  sets the hub's values absolutely (`force=True`), reads the shop back, and if the hub's value
  moved meanwhile (a sale arrived) pushes the newer value once more.
- **The scheduled reconcile** (`reconcile_loop`) runs one loop per shop, so a slow or failing
  shop never holds up the others. WooCommerce never retries a failed webhook, so with a publisher
  each round first resyncs the orders changed since the last one seen (an hour back the first
  time: a shop's whole history would replay sales from before the hub knew its stock). A shop
  showing *less* than the hub may be a sale whose order the hub has not processed yet; raising it
  could oversell, so the loop raises a SKU only when the same drift is seen two rounds in a row,
  and never in a round whose resync failed. Lowering is always safe and happens at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import httpx
import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from connectors.base import Account, ShopClient, StockDrift, build_client, order_pages, stock_drift
from connectors.errors import ConnectorError, UnknownAccount
from hub.audit import record
from hub.bus import BrokerUnavailable, Publisher
from hub.config import SHOP_CONNECTORS, ConfigError, Settings
from hub.core.batch import rules_from_config
from hub.domain.allocation import Level, Rule, channel_available
from hub.store import locks
from hub.store.models import ConnectorCursor, Stock

log = structlog.get_logger("hub.shops")

Sessions = async_sessionmaker[AsyncSession]
What = Literal["orders", "stock", "products"]
WHATS: tuple[str, ...] = ("orders", "stock", "products")
TransportFor = Callable[[str], httpx.AsyncBaseTransport | None]
Progress = Callable[["ResyncReport"], None]  # called after every page


class ResyncInterrupted(RuntimeError):
    """A resync stopped part-way (platform or broker failure). The cursor of the last published
    page is stored, so running it again resumes there; `report` says what was done."""

    def __init__(self, report: ResyncReport, reason: str) -> None:
        super().__init__(f"resync of {report.account} {report.what} interrupted: {reason}")
        self.report = report
        self.reason = reason


# --- reports ------------------------------------------------------------------------------------


def _drift_json(drift: Iterable[StockDrift]) -> list[dict[str, Any]]:
    return [
        {"sku": d.sku, "platform": d.platform, "hub": d.hub, "difference": d.difference}
        for d in drift
    ]


@dataclass
class ResyncReport:
    account: str
    what: str
    since: datetime | None = None
    resumed_from: str | None = None  # the stored page cursor this run started from
    pages: int = 0
    published: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (platform id, reason)
    newest: datetime | None = None
    finished: bool = False
    platform_skus: int = 0
    drift: list[StockDrift] = field(default_factory=list)  # what=stock
    unknown_skus: list[str] = field(default_factory=list)  # what=products

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "account": self.account,
            "what": self.what,
            "since": self.since.isoformat() if self.since else None,
            "finished": self.finished,
        }
        if self.what == "orders":
            out.update(
                resumed_from=self.resumed_from,
                pages=self.pages,
                published=self.published,
                rejected=[{"id": i, "reason": r} for i, r in self.rejected],
                newest=self.newest.isoformat() if self.newest else None,
            )
        elif self.what == "stock":
            out.update(platform_skus=self.platform_skus, drift=_drift_json(self.drift))
        else:
            out.update(platform_skus=self.platform_skus, unknown_skus=self.unknown_skus)
        return out


@dataclass
class ReconcileReport:
    account: str
    channel: str
    fix: bool
    compared: int = 0
    drift: list[StockDrift] = field(default_factory=list)  # before any fix
    fixed: dict[str, int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    held: list[StockDrift] = field(default_factory=list)  # raises waiting for confirmation
    remaining: list[StockDrift] = field(default_factory=list)  # after the run
    unknown_to_hub: list[str] = field(default_factory=list)
    not_on_platform: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No drift left after the run."""
        return not self.remaining

    def to_json(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "channel": self.channel,
            "fix": self.fix,
            "ok": self.ok,
            "compared": self.compared,
            "drift": _drift_json(self.drift),
            "fixed": self.fixed,
            "failed": self.failed,
            "held": _drift_json(self.held),
            "remaining": _drift_json(self.remaining),
            "unknown_to_hub": self.unknown_to_hub,
            "not_on_platform": self.not_on_platform,
        }


@dataclass
class PushReport:
    account: str
    channel: str
    all_skus: bool
    pushed: dict[str, int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    unchanged: int = 0
    not_on_platform: list[str] = field(default_factory=list)
    platform_before: dict[str, int] = field(default_factory=dict)  # of the SKUs set (audit)

    def to_json(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "channel": self.channel,
            "all": self.all_skus,
            "pushed": self.pushed,
            "failed": self.failed,
            "unchanged": self.unchanged,
            "not_on_platform": self.not_on_platform,
        }


@dataclass(frozen=True)
class Health:
    account: str
    status: Literal["ok", "unreachable", "refused", "not checked"]
    detail: str | None = None
    latency_ms: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "detail": self.detail, "latency_ms": self.latency_ms}


# --- accounts and the hub's side ----------------------------------------------------------------


def shop_account(settings: Settings, name: str) -> Account:
    """The configured shop account `name`; UnknownAccount if there is none."""
    cfg = settings.hub.accounts.get(name)
    if cfg is None or cfg.connector not in SHOP_CONNECTORS:
        raise UnknownAccount(name)
    return Account(name, cfg)


def shop_accounts(settings: Settings) -> list[Account]:
    return [
        Account(name, cfg)
        for name, cfg in sorted(settings.hub.accounts.items())
        if cfg.connector in SHOP_CONNECTORS
    ]


def channel_rule(settings: Settings, account: Account) -> Rule:
    rules = rules_from_config(settings.hub.channels)
    if account.config.channel not in rules:
        raise UnknownAccount(
            f"{account.name} (sells on unknown channel {account.config.channel!r})"
        )
    return rules[account.config.channel]


async def hub_available(
    sessions: Sessions, rule: Rule, skus: Collection[str] | None = None
) -> dict[str, int]:
    """The hub's available-to-sell for one channel, for every SKU it knows (or those asked).

    The same computation as `stock_view(...)["channels"][channel]["available"]`, in one query
    (a query per few thousand SKUs asked: a catalogue's worth is more than a statement binds).
    """
    levels: dict[str, list[Level]] = {}
    async with sessions() as session:
        queries = (
            [select(Stock)]
            if skus is None
            else [
                select(Stock).where(locks.one_of(session, Stock.sku, part))
                for part in locks.chunks(sorted(set(skus)))
            ]
        )
        for q in queries:
            for row in (await session.execute(q)).scalars():
                per_sku = levels.setdefault(row.sku, [])
                if rule.sells_from(row.location):
                    per_sku.append(Level(row.on_hand, row.reserved, row.safety_stock))
    return {sku: channel_available(lv, rule) for sku, lv in sorted(levels.items())}


async def platform_stock(client: ShopClient, sessions: Sessions) -> dict[str, int]:
    """Everything the shop tracks stock for. A platform that reads stock one SKU at a time
    (the generic connector) is asked for the SKUs the hub knows."""
    try:
        return await client.get_stock(None)
    except ConnectorError as exc:
        if exc.retryable or exc.status is not None:
            raise
    async with sessions() as session:
        skus = list((await session.execute(select(Stock.sku).distinct())).scalars())
    return await client.get_stock(sorted(skus))


# --- resync cursors -----------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderCursor:
    """What `connector_cursors.cursor` holds for `orders`: the run's `since`, the next page
    (None once the run finished), the newest modification time seen, when the run the page
    belongs to started, and `synced`: every order modified before it was read by a run that
    finished (the next incremental resync starts there)."""

    since: datetime | None = None
    page: str | None = None
    newest: datetime | None = None
    started: datetime | None = None
    synced: datetime | None = None

    def dump(self) -> str:
        return json.dumps(
            {
                "since": _iso(self.since),
                "page": self.page,
                "newest": _iso(self.newest),
                "started": _iso(self.started),
                "synced": _iso(self.synced),
            }
        )

    @classmethod
    def load(cls, text: str | None) -> OrderCursor:
        if not text:
            return cls()
        try:
            raw = json.loads(text)
            newest = _time(raw.get("newest"))
            return cls(
                _time(raw.get("since")),
                raw.get("page"),
                newest,
                _time(raw.get("started")),
                # A cursor stored before `synced` was kept: its newest time stood for it.
                _time(raw.get("synced")) if "synced" in raw else newest,
            )
        except (ValueError, AttributeError, TypeError):
            return cls()  # an unreadable cursor means a full resync, never a crash

    def finished(self, since: datetime | None) -> datetime | None:
        """`synced` once the run from `since` that started at `started` read its last page. An
        order modified while the run read its pages may sit on a page read before: only what
        was modified before the run started, and before the newest time it saw, is surely read.
        A run from later than `synced` leaves a gap behind it, and `synced` where it was."""
        if self.synced is not None and since is not None and since > self.synced:
            return self.synced
        if self.newest is None or self.started is None:
            return self.synced or since
        return min(self.newest, self.started)


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t else None


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    t = datetime.fromisoformat(value)
    return t if t.tzinfo else t.replace(tzinfo=UTC)


async def _cursor_row(sessions: Sessions, account: str, what: str) -> ConnectorCursor | None:
    async with sessions() as session:
        return await session.get(ConnectorCursor, (account, what))


async def _save_cursor(
    sessions: Sessions,
    account: str,
    what: str,
    *,
    cursor: str | None = None,
    synced: bool = False,
    error: str | None = None,
    keep_cursor: bool = False,
) -> None:
    async with sessions() as session, session.begin():
        row = await session.get(ConnectorCursor, (account, what))
        if row is None:
            row = ConnectorCursor(account=account, what=what)
            session.add(row)
        if not keep_cursor:
            row.cursor = cursor
        if synced:
            row.last_sync_at = datetime.now(UTC)
        row.last_error = error[:2000] if error else None


async def last_order_sync(sessions: Sessions, account: str) -> datetime | None:
    """The time before which every order of `account` modified was read by a finished resync."""
    row = await _cursor_row(sessions, account, "orders")
    return OrderCursor.load(row.cursor if row else None).synced


async def sync_state(sessions: Sessions) -> dict[str, dict[str, dict[str, Any]]]:
    """account → what → last sync time, last error, and whether a resync is unfinished."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    async with sessions() as session:
        for row in (await session.execute(select(ConnectorCursor))).scalars():
            at = row.last_sync_at
            if at is not None and at.tzinfo is None:
                at = at.replace(tzinfo=UTC)
            out.setdefault(row.account, {})[row.what] = {
                "last_sync_at": at.isoformat() if at else None,
                "last_error": row.last_error,
                "interrupted": row.what == "orders"
                and OrderCursor.load(row.cursor).page is not None,
            }
    return out


# --- resync -------------------------------------------------------------------------------------


async def resync(
    settings: Settings,
    account_name: str,
    *,
    what: str,
    since: datetime | None,
    publisher: Publisher,
    sessions: Sessions,
    transport: httpx.AsyncBaseTransport | None = None,
    progress: Progress | None = None,
    restart: bool = False,
) -> ResyncReport:
    """Pull from the shop's API: `orders` are published, `stock` and `products` are reported.

    An unfinished orders resync resumes from its stored cursor unless `restart` is set or a
    different `since` is asked for. Raises ResyncInterrupted (cursor kept) if the shop or the
    broker fails part-way, ConnectorError if the shop fails before anything was done.
    """
    if what not in WHATS:
        raise ValueError(f"unknown resync kind {what!r}: use {', '.join(WHATS)}")
    account = shop_account(settings, account_name)
    client = build_client(account, transport=transport)
    try:
        if what == "orders":
            return await _resync_orders(
                account, client, since, publisher, sessions, progress, restart
            )
        report = ResyncReport(account.name, what, since)
        try:
            platform = await platform_stock(client, sessions)
        except ConnectorError as exc:
            await _save_cursor(sessions, account.name, what, error=str(exc))
            raise
        report.platform_skus = len(platform)
        if what == "stock":
            hub = await hub_available(sessions, channel_rule(settings, account))
            report.drift = [d for d in stock_drift(platform, hub) if d.platform is not None]
        else:
            async with sessions() as session:
                known = set((await session.execute(select(Stock.sku).distinct())).scalars())
            report.unknown_skus = sorted(set(platform) - known)
        report.finished = True
        await _save_cursor(sessions, account.name, what, synced=True)
        if progress is not None:
            progress(report)
        return report
    finally:
        await client.aclose()


async def _resync_orders(
    account: Account,
    client: ShopClient,
    since: datetime | None,
    publisher: Publisher,
    sessions: Sessions,
    progress: Progress | None,
    restart: bool,
) -> ResyncReport:
    row = await _cursor_row(sessions, account.name, "orders")
    stored = OrderCursor.load(row.cursor if row else None)
    start: str | None = None
    started = datetime.now(UTC)
    if stored.page and not restart and (since is None or since == stored.since):
        since = stored.since
        # A page stored before runs kept their start may count pages in another order (by
        # modification time, before WooCommerce's were paged by id): such a run starts over.
        if stored.started is not None:
            start, started = stored.page, stored.started
    report = ResyncReport(account.name, "orders", since, resumed_from=start, newest=stored.newest)
    run = OrderCursor(since, start, stored.newest, started, stored.synced)
    try:
        try:
            await _publish_pages(account, client, run, publisher, sessions, progress, report)
        except ConnectorError as exc:
            if start is None or report.pages or exc.retryable:
                raise
            # A platform cursor can expire (Shopify's page_info does): start this run over.
            log.warning("stored resync cursor refused, starting over", account=account.name)
            report.resumed_from = None
            run = replace(run, page=None, started=datetime.now(UTC))
            await _publish_pages(account, client, run, publisher, sessions, progress, report)
    except (ConnectorError, BrokerUnavailable) as exc:
        await _save_cursor(sessions, account.name, "orders", error=str(exc), keep_cursor=True)
        if report.pages == 0 and isinstance(exc, ConnectorError):
            raise
        raise ResyncInterrupted(report, str(exc)) from exc
    for oid, reason in report.rejected:
        log.warning("resync rejected an order", account=account.name, order=oid, reason=reason)
    return report


async def _publish_pages(
    account: Account,
    client: ShopClient,
    run: OrderCursor,
    publisher: Publisher,
    sessions: Sessions,
    progress: Progress | None,
    report: ResyncReport,
) -> None:
    """Publish page after page from `run.page`; once a page is acknowledged, store the cursor
    of the next, and with the last one the run's `synced` time."""
    async for page in order_pages(client, since=run.since, cursor=run.page):
        if page.envelopes:
            await publisher.publish(page.envelopes)
        report.pages += 1
        report.published += len(page.envelopes)
        report.rejected.extend(page.rejected)
        if page.newest and (report.newest is None or page.newest > report.newest):
            report.newest = page.newest
        report.finished = page.cursor is None
        run = replace(run, page=page.cursor, newest=report.newest)
        if report.finished:
            run = replace(run, synced=run.finished(run.since))
        await _save_cursor(
            sessions, account.name, "orders", cursor=run.dump(), synced=report.finished
        )
        if progress is not None:
            progress(report)


# --- reconcile and push -------------------------------------------------------------------------


async def reconcile(
    settings: Settings,
    account_name: str,
    *,
    fix: bool,
    sessions: Sessions,
    actor: str = "cli",
    transport: httpx.AsyncBaseTransport | None = None,
    confirmed: Collection[StockDrift] | None = None,
) -> ReconcileReport:
    """Compare the shop's stock with the hub's available-to-sell; with `fix`, set the hub's values.

    `confirmed` (the scheduled reconcile): a SKU the shop shows *below* the hub is raised only if
    the same drift is in `confirmed` (seen last round); the others are `held`. None fixes all.
    """
    account = shop_account(settings, account_name)
    rule = channel_rule(settings, account)
    report = ReconcileReport(account.name, account.config.channel, fix)
    client = build_client(account, transport=transport)
    try:
        # The shop first, then the hub: a sale landing in between lowers the hub's figure, so
        # the comparison errs towards offering less, never more.
        platform = await platform_stock(client, sessions)
        hub = await hub_available(sessions, rule)
        every = stock_drift(platform, hub)
        report.drift = [d for d in every if d.platform is not None]
        report.not_on_platform = [d.sku for d in every if d.platform is None]
        report.unknown_to_hub = sorted(set(platform) - set(hub))
        report.compared = len(set(platform) & set(hub))
        if not fix:
            report.remaining = list(report.drift)
            return report
        push: dict[str, int] = {}
        for d in report.drift:
            raising = d.platform is not None and d.hub > d.platform
            if confirmed is not None and raising and d not in confirmed:
                report.held.append(d)
            else:
                push[d.sku] = d.hub
        if push:
            failure: Exception | None = None
            after: dict[str, int] = {}
            try:
                after = await _force(client, sessions, rule, push, report)
            except ConnectorError as exc:  # what was set before the failure is audited too
                failure = exc
            async with sessions() as session, session.begin():
                await record(
                    session,
                    actor,
                    "stock.reconcile",
                    account.name,
                    before={
                        "channel": account.config.channel,
                        "platform": {d.sku: d.platform for d in report.drift if d.sku in push},
                        "hub": push,
                    },
                    after={
                        "pushed": report.fixed,
                        "failed": report.failed,
                        "platform": after,
                        "error": str(failure) if failure else None,
                    },
                )
            if failure is not None:
                raise failure
        report.remaining = sorted(report.remaining + report.held, key=lambda d: d.sku)
        return report
    finally:
        await client.aclose()


FIX_ROUNDS = 2


async def _force(
    client: ShopClient,
    sessions: Sessions,
    rule: Rule,
    push: dict[str, int],
    report: ReconcileReport,
) -> dict[str, int]:
    """Set `push` absolutely, read back; push again once if the hub moved meanwhile. Fills
    `report.fixed`, `report.failed`, `report.remaining`; returns the shop's values read back."""
    skus = sorted(push)
    after: dict[str, int] = {}
    for round_ in range(FIX_ROUNDS):
        try:
            result = await client.set_stock(push, force=True)
        except ConnectorError as exc:  # what it set before failing is reported (and audited)
            if exc.partial is not None:
                report.fixed.update(exc.partial.updated)
                report.failed.update(exc.partial.failed)
            raise
        report.fixed.update(result.updated)
        report.failed.update(result.failed)
        after = await client.get_stock(skus)
        hub = await hub_available(sessions, rule, skus)
        report.remaining = [
            StockDrift(s, after.get(s), hub.get(s, 0))
            for s in skus
            if after.get(s) != hub.get(s, 0)
        ]
        # Only a hub that moved since the push is worth another push; a shop that refused
        # the value would refuse it again.
        push = {
            d.sku: d.hub
            for d in report.remaining
            if d.sku not in result.failed and d.hub != push.get(d.sku)
        }
        if not push or round_ + 1 == FIX_ROUNDS:
            break
    return after


async def push_stock(
    settings: Settings,
    account_name: str,
    *,
    all_skus: bool,
    sessions: Sessions,
    transport: httpx.AsyncBaseTransport | None = None,
) -> PushReport:
    """Push the hub's available-to-sell to the shop now: every SKU both know (`all_skus`), or
    only those that differ. A normal push (compare-and-set where the platform has it)."""
    account = shop_account(settings, account_name)
    rule = channel_rule(settings, account)
    report = PushReport(account.name, account.config.channel, all_skus)
    client = build_client(account, transport=transport)
    try:
        platform = await platform_stock(client, sessions)
        hub = await hub_available(sessions, rule)
        report.not_on_platform = sorted(set(hub) - set(platform))
        levels = {
            sku: value
            for sku, value in hub.items()
            if sku in platform and (all_skus or platform[sku] != value)
        }
        report.unchanged = len(set(hub) & set(platform)) - len(levels)
        report.platform_before = {sku: platform[sku] for sku in levels}
        if levels:
            await _push_settled(client, sessions, rule, levels, report)
        return report
    finally:
        await client.aclose()


async def _push_settled(
    client: ShopClient, sessions: Sessions, rule: Rule, push: dict[str, int], report: PushReport
) -> None:
    """Push, then push again the SKUs whose hub figure moved while the push was on its way: a
    sale's own level may have reached the shop first, and this push, read before the sale,
    would otherwise leave the shop offering what is gone. At most `FIX_ROUNDS` pushes."""
    for round_ in range(FIX_ROUNDS):
        try:
            result = await client.set_stock(push)
        except ConnectorError as exc:
            partial = exc.partial
            if round_ == 0 and (partial is None or not partial.updated):
                raise
            # A push landed, the first or part of this one: say what it did, and what not.
            if partial is not None:
                report.pushed.update(partial.updated)
                report.failed.update(partial.failed)
            done = (partial.updated.keys() | partial.failed.keys()) if partial else set()
            report.failed.update({s: exc.message for s in push if s not in done})
            return
        report.pushed.update(result.updated)
        report.failed.update(result.failed)
        hub = await hub_available(sessions, rule, sorted(push))
        push = {
            sku: hub.get(sku, 0)
            for sku, value in push.items()
            if sku not in result.failed and hub.get(sku, 0) != value
        }
        if not push:
            return


# --- health -------------------------------------------------------------------------------------


HEALTH_PROBE_SKU = "hub-health-probe"


async def health(
    settings: Settings,
    account_name: str,
    *,
    within: float = 3.0,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Health:
    """One quick authenticated call to the shop, answered `within` seconds or not: never raises."""
    account = shop_account(settings, account_name)
    started = time.monotonic()
    try:
        client = build_client(account, transport=transport)
    except ConnectorError as exc:
        return Health(account.name, "refused", exc.message)
    except ConfigError as exc:  # e.g. a secret reference to an unset variable
        return Health(account.name, "refused", str(exc))
    try:
        async with asyncio.timeout(within):
            try:
                # Orders changed from now on: one call answering an empty page.
                await client.list_orders(since=datetime.now(UTC), cursor=None)
            except ConnectorError as exc:
                if exc.retryable or exc.status is not None:
                    raise
                await client.get_stock([HEALTH_PROBE_SKU])  # a platform without order listing
    except TimeoutError:
        return Health(account.name, "unreachable", f"no answer within {within:g} s")
    except ConnectorError as exc:
        status: Literal["unreachable", "refused"] = "unreachable" if exc.retryable else "refused"
        return Health(account.name, status, exc.message[:300])
    finally:
        await client.aclose()
    return Health(account.name, "ok", latency_ms=int((time.monotonic() - started) * 1000))


# --- the scheduled reconcile (`hub serve`) ------------------------------------------------------


RESYNC_OVERLAP = timedelta(minutes=1)  # re-read around the last change seen: ids dedupe it
FIRST_LOOKBACK = timedelta(hours=1)  # never synced: recent orders only, not the shop's history


async def reconcile_loop(
    settings: Settings,
    sessions: Sessions,
    stop: asyncio.Event,
    interval: float,
    transport_for: TransportFor | None = None,
    *,
    publisher: Publisher | None = None,
    only: str | None = None,
    confirm_raises: bool = True,
) -> None:
    """Every `interval` seconds, reconcile-with-fix every shop account (or `only` that one)
    until `stop` is set.

    One loop per shop: a failing or slow shop is logged and never holds up the others. With a
    `publisher`, each round first resyncs the orders changed since the last one seen (webhooks
    that never arrived; an hour back the first time, never the whole history). With
    `confirm_raises`, a shop below the hub is raised only when the same drift is seen two rounds
    in a row, and never in a round whose resync failed (a sale may still be on its way to the
    hub). `interval <= 0` returns at once (disabled).
    """
    if interval <= 0:
        return
    accounts = [a for a in shop_accounts(settings) if only is None or a.name == only]
    await asyncio.gather(
        *(
            _account_loop(
                settings,
                sessions,
                stop,
                interval,
                account.name,
                transport_for(account.name) if transport_for else None,
                publisher if account.connector != "generic" else None,  # it lists no orders
                confirm_raises,
            )
            for account in accounts
        )
    )


async def revive_webhooks(
    settings: Settings, name: str, transport: httpx.AsyncBaseTransport | None = None
) -> list[str]:
    """Switch on again the shop's webhooks to the hub that the platform switched off (a
    platform that stops delivering after failures, as WooCommerce does); [] where the
    platform has nothing to switch. Each one is logged."""
    client = build_client(shop_account(settings, name), transport=transport)
    try:
        revive = getattr(client, "revive_webhooks", None)
        revived, named = await revive() if revive is not None else ([], [])
    finally:
        await client.aclose()
    for hook in revived:
        log.warning(
            "webhook switched off by the shop after failed deliveries: switched on again",
            account=name,
            webhook=hook,
        )
    for hook in named:
        log.warning(
            "webhook switched off by the shop: set the account's webhook_url to have the hub "
            "switch its own on again",
            account=name,
            webhook=hook,
        )
    return revived


async def _account_loop(
    settings: Settings,
    sessions: Sessions,
    stop: asyncio.Event,
    interval: float,
    name: str,
    transport: httpx.AsyncBaseTransport | None,
    publisher: Publisher | None,
    confirm_raises: bool,
) -> None:
    started = datetime.now(UTC)
    seen: set[StockDrift] = set()
    while not stop.is_set():
        resynced = True
        try:  # before the resync, so that what it reads is followed by live deliveries again
            await revive_webhooks(settings, name, transport)
        except Exception as exc:  # one shop's failure must not end the loop
            log.warning("webhook check failed", account=name, error=repr(exc)[:500])
        if publisher is not None:
            try:
                last = await last_order_sync(sessions, name)
                await resync(
                    settings,
                    name,
                    what="orders",
                    since=last - RESYNC_OVERLAP if last else started - FIRST_LOOKBACK,
                    publisher=publisher,
                    sessions=sessions,
                    transport=transport,
                )
            except Exception as exc:  # one shop's failure must not end the loop
                resynced = False
                log.warning("scheduled resync failed", account=name, error=repr(exc)[:500])
        try:
            report = await reconcile(
                settings,
                name,
                fix=True,
                sessions=sessions,
                actor="reconcile-loop",
                transport=transport,
                confirmed=(seen if resynced else set()) if confirm_raises else None,
            )
            seen = set(report.held)
            log.info(
                "scheduled reconcile",
                account=name,
                drift=len(report.drift),
                fixed=len(report.fixed),
                held=len(report.held),
                remaining=len(report.remaining),
            )
        except Exception as exc:
            log.warning("scheduled reconcile failed", account=name, error=repr(exc)[:500])
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
