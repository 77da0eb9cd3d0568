"""The kill -9 scenario shared by the CI test and the soak run.

Two `hub run core` processes (one consumer group) and one `hub run relay` run against the
embedded broker and a database. The test process seeds stock, then drives a steady stream of
orders (placements, duplicate deliveries, cancels, fulfilments of reserved orders) while each
role is killed with SIGKILL at random moments and restarted at once. When the stream ends the
roles are left alone until every order is decided and the outbox is drained; then the checks run
against the store, the `hub stock check` command and the decisions on `hub.reservations.v1`.

A restarted core needs 3-11 s before it consumes (its group rebalances and waits for the killed
member's session to expire), so at this kill rate most kills land while a role is starting,
joining or rebalancing, and a few while it is up and working; the report says how many of each.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from hub.kafka.embedded import EmbeddedBroker
from hub.kafka.producer import KafkaPublisher
from hub.kafka.reader import read_topic
from hub.store.db import make_engine, session_factory
from hub.store.models import Order, OutboxRow, ProcessedMessage, Reservation, Stock
from schemas import Envelope, topics
from tests.builders import cancel, counted, fulfil, place
from tests.reliability.cluster import (
    Cluster,
    RoleProcess,
    hub_command,
    role_env,
    until,
)

SKUS = [f"SKU-{n:02d}" for n in range(16)]
STOCK_PER_SKU = 40
DECIDED = ("hub.reservation.reserved.v1", "hub.reservation.rejected.v1")


@dataclass
class CrashReport:
    database: str
    seconds: float = 0.0
    kills: dict[str, int] = field(default_factory=dict)
    kills_while_running: int = 0
    orders: int = 0
    messages: int = 0
    duplicates_sent: int = 0
    decided_during_kills: int = 0
    reserved: int = 0
    rejected: int = 0
    redelivered_decisions: int = 0
    checks: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def total_kills(self) -> int:
        return sum(self.kills.values())

    def line(self) -> str:
        per_role = ", ".join(f"{k} {v}" for k, v in sorted(self.kills.items()))
        return (
            f"crash[{self.database}] {self.seconds:.0f}s: {self.total_kills} kill -9 "
            f"({per_role}; {self.kills_while_running} after the role was up), "
            f"{self.messages} messages for {self.orders} orders ({self.duplicates_sent} duplicate "
            f"deliveries), {self.decided_during_kills} orders decided while killing, "
            f"{self.reserved} reserved / {self.rejected} rejected, "
            f"{self.redelivered_decisions} decisions redelivered with the same id; "
            f"{len(self.checks)} checks: {'; '.join(self.checks)}"
        )


@dataclass
class Driver:
    """The traffic: every envelope sent, by order key."""

    publisher: KafkaPublisher
    rng: random.Random
    sent: list[Envelope] = field(default_factory=list)
    placed: dict[str, Envelope] = field(default_factory=dict)
    lines: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    cancelled: set[str] = field(default_factory=set)
    fulfilled: set[str] = field(default_factory=set)
    duplicates: int = 0

    async def send(self, envs: list[Envelope]) -> None:
        for attempt in range(20):
            try:
                await self.publisher.publish(envs)
                break
            except Exception:
                if attempt == 19:
                    raise
                await asyncio.sleep(0.2)
        self.sent.extend(envs)

    async def order(self, n: int) -> None:
        key = f"acme:{n}"
        lines = [
            (sku, self.rng.randint(1, 3)) for sku in self.rng.sample(SKUS, self.rng.randint(1, 2))
        ]
        env = place(key, lines)
        self.placed[key] = env
        self.lines[key] = lines
        envs = [env]
        if self.rng.random() < 0.15:  # the platform delivers it twice
            envs.append(env)
            self.duplicates += 1
        if self.rng.random() < 0.1:  # cancelled right away, same partition: after the order
            envs.append(cancel(key))
            self.cancelled.add(key)
        await self.send(envs)

    async def follow_up(self, sessions: Any) -> None:
        """Fulfil or cancel some orders the hub reserved; send a few duplicates of old ones."""
        async with sessions() as s:
            reserved = (
                (await s.execute(select(Order.order_key).where(Order.status == "reserved")))
                .scalars()
                .all()
            )
        open_ = [k for k in reserved if k not in self.cancelled and k not in self.fulfilled]
        envs: list[Envelope] = []
        for key in self.rng.sample(open_, min(len(open_), 6)):
            if self.rng.random() < 0.5:
                envs.append(fulfil(key, self.lines[key]))
                self.fulfilled.add(key)
            else:
                envs.append(cancel(key))
                self.cancelled.add(key)
        for key in self.rng.sample(sorted(self.placed), min(len(self.placed), 3)):
            envs.append(self.placed[key])  # a late redelivery of an old order
            self.duplicates += 1
        if envs:
            await self.send(envs)


async def killer(roles: list[RoleProcess], rng: random.Random, stop: asyncio.Event) -> None:
    """Every 0.2-1.6 s kill -9 one role and restart it at once. The victim is drawn among the
    roles that are up (said "hub running") 7 times in 10 when any is, so kills land mid-batch and
    mid-publish, otherwise among all, so they also land mid-start-up and mid-rebalance."""
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), rng.uniform(0.2, 1.6))
        except TimeoutError:
            up = [r for r in roles if r.running()]
            victim = rng.choice(up if up and rng.random() < 0.7 else roles)
            victim.kill9()
            victim.start()


async def run_crash(
    db_url: str, workdir: Path, *, seconds: float, seed: int | None = None, rate: float = 25.0
) -> CrashReport:
    """Drive orders for `seconds` while killing roles; recover; check. Never raises on a failed
    check: the report's `problems` say what failed."""
    seed = seed if seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    database = "postgresql" if db_url.startswith("postgresql") else "sqlite"
    report = CrashReport(database)
    started = time.monotonic()
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    broker = EmbeddedBroker.start(log=workdir / "broker.log")
    cluster = Cluster()
    engine = make_engine(db_url)
    sessions = session_factory(engine)
    publisher = KafkaPublisher(broker.bootstrap)
    try:
        env = role_env(broker.bootstrap, db_url, workdir)
        hub_command(["topics", "ensure"], env, workdir)
        hub_command(["db", "upgrade"], env, workdir)
        cores = [cluster.add(f"core-{i}", "core", env, workdir) for i in (1, 2)]
        relay = cluster.add("relay", "relay", env, workdir)
        for r in cluster.roles:
            r.start()
        await publisher.start()
        driver = Driver(publisher, rng)
        await driver.send([counted(sku, STOCK_PER_SKU, cid="seed") for sku in SKUS])

        async def seeded() -> bool:
            async with sessions() as s:
                n = (await s.execute(select(func.count()).select_from(Stock))).scalar_one()
            return n == len(SKUS)

        await until(seeded, 90, "stock counts applied")

        stop = asyncio.Event()
        killers = [asyncio.create_task(killer(cluster.roles, random.Random(rng.random()), stop))]
        try:
            t0 = time.monotonic()
            n = 0
            next_follow = t0 + 1.0
            while time.monotonic() - t0 < seconds:
                await driver.order(n)
                n += 1
                if time.monotonic() >= next_follow:
                    await driver.follow_up(sessions)
                    next_follow += 1.0
                await asyncio.sleep(max(0.0, t0 + n / rate - time.monotonic()))
        finally:
            stop.set()
            await asyncio.gather(*killers, return_exceptions=True)
        for r in cluster.roles:
            if not r.alive():
                r.start()
        async with sessions() as s:
            report.decided_during_kills = (
                await s.execute(
                    select(func.count()).select_from(Order).where(Order.status != "new")
                )
            ).scalar_one()
        report.kills = {"core": sum(c.kills for c in cores), "relay": relay.kills}
        report.kills_while_running = sum(r.kills_while_running for r in cluster.roles)
        report.orders = len(driver.placed)
        report.messages = len(driver.sent) + len(SKUS)
        report.duplicates_sent = driver.duplicates
        await _settle(sessions, driver, report, cluster)
        await _check(broker.bootstrap, sessions, driver, report, env, workdir)
    finally:
        report.seconds = time.monotonic() - started
        await publisher.stop()
        cluster.close()
        await engine.dispose()
        broker.stop()
    if report.problems:
        report.problems.append(f"seed {seed}; logs in {workdir}")
    return report


async def _settle(sessions: Any, driver: Driver, report: CrashReport, cluster: Cluster) -> None:
    """Wait until every message sent is in the core's inbox and the outbox is drained."""
    ids = {e.id for e in driver.sent}

    async def everything_processed() -> bool:
        async with sessions() as s:
            inbox = set(
                (
                    await s.execute(
                        select(ProcessedMessage.message_id).where(
                            ProcessedMessage.consumer == "core"
                        )
                    )
                )
                .scalars()
                .all()
            )
            decided = (
                await s.execute(
                    select(func.count())
                    .select_from(Order)
                    .where(Order.order_key.in_(list(driver.placed)), Order.status != "new")
                )
            ).scalar_one()
        return bool(ids <= inbox and decided == len(driver.placed))

    async def drained() -> bool:
        async with sessions() as s:
            backlog = (
                await s.execute(
                    select(func.count()).select_from(OutboxRow).where(OutboxRow.sent_at.is_(None))
                )
            ).scalar_one()
        return bool(backlog == 0)

    try:
        await until(everything_processed, 180, "every message processed after the kills")
        await until(drained, 120, "outbox drained")
    except AssertionError as exc:
        tails = "\n".join(f"--- {r.name}\n{r.tail()}" for r in cluster.roles)
        report.problems.append(f"{exc}\n{tails}")


async def _check(
    bootstrap: str,
    sessions: Any,
    driver: Driver,
    report: CrashReport,
    env: dict[str, str],
    workdir: Path,
) -> None:
    problems, checks = report.problems, report.checks
    async with sessions() as s:
        inbox = set(
            (
                await s.execute(
                    select(ProcessedMessage.message_id).where(ProcessedMessage.consumer == "core")
                )
            )
            .scalars()
            .all()
        )
        statuses = {k: v for k, v in (await s.execute(select(Order.order_key, Order.status))).all()}
        res_rows = (await s.execute(select(Reservation))).scalars().all()
        stock = {r.sku: r for r in (await s.execute(select(Stock))).scalars()}

    lost = {e.id for e in driver.sent} - inbox
    if lost:
        problems.append(f"{len(lost)} messages sent but never processed, e.g. {sorted(lost)[:3]}")
    checks.append(f"{len(driver.sent)} sent messages all in the inbox")

    undecided = [k for k in driver.placed if statuses.get(k, "new") == "new"]
    if undecided:
        problems.append(f"{len(undecided)} orders never decided, e.g. {undecided[:3]}")
    checks.append(f"{len(driver.placed)} orders decided in the store")

    records = await read_topic(bootstrap, topics.RESERVATIONS)
    decisions: dict[str, dict[str, str]] = defaultdict(dict)  # key → {message id: ce_type}
    copies: Counter[str] = Counter()
    released: dict[str, int] = defaultdict(int)
    reserved_units: dict[str, int] = defaultdict(int)
    seen_released: set[str] = set()
    for rec in records:
        h = {k: v.decode() for k, v in rec.headers}
        key = rec.key.decode()
        if h["ce_type"] in DECIDED:
            copies[h["ce_id"]] += 1
            if h["ce_id"] not in decisions[key] and h["ce_type"] == DECIDED[0]:
                for line in json.loads(rec.value)["lines"]:
                    reserved_units[line["sku"]] += line["quantity"]
            decisions[key][h["ce_id"]] = h["ce_type"]
        elif h["ce_type"] == "hub.reservation.released.v1" and h["ce_id"] not in seen_released:
            seen_released.add(h["ce_id"])
            for line in json.loads(rec.value)["lines"]:
                released[line["sku"]] += line["quantity"]
    report.redelivered_decisions = sum(c - 1 for c in copies.values())
    twice = {k: v for k, v in decisions.items() if len(v) > 1}
    if twice:
        k, v = next(iter(twice.items()))
        problems.append(f"{len(twice)} orders decided twice, e.g. {k}: {sorted(v.values())}")
    missing = [k for k in driver.placed if k not in decisions]
    if missing:
        problems.append(f"{len(missing)} orders without a decision on the topic: {missing[:3]}")
    checks.append(
        f"{len(records)} records on {topics.RESERVATIONS}: one decision per order "
        f"(same-id redeliveries allowed)"
    )
    kinds = Counter(next(iter(v.values())) for v in decisions.values() if len(v) == 1)
    report.reserved, report.rejected = kinds[DECIDED[0]], kinds[DECIDED[1]]

    per_order: dict[str, int] = defaultdict(int)
    for r in res_rows:
        per_order[r.order_key] += r.quantity
    rejected_but_held = [
        k
        for k, v in decisions.items()
        if list(v.values()) == [DECIDED[1]]
        and any(r.open or r.shipped for r in res_rows if r.order_key == k)
    ]
    if rejected_but_held:
        problems.append(f"rejected orders holding stock: {rejected_but_held[:3]}")
    over = {
        k: q
        for k, q in per_order.items()
        if k in driver.lines and q > sum(n for _, n in driver.lines[k])
    }
    if over:
        problems.append(f"orders reserved more than ordered (twice?): {list(over.items())[:3]}")
    checks.append("no order reserved twice (topic and reservation rows)")

    for sku in SKUS:
        held = reserved_units[sku] - released[sku]
        if held > STOCK_PER_SKU:
            problems.append(
                f"{sku}: {held} units accepted and not released > stock {STOCK_PER_SKU}"
            )
        shipped = sum(
            q
            for k in driver.fulfilled
            if statuses.get(k) == "fulfilled"
            for s_, q in driver.lines[k]
            if s_ == sku
        )
        row = stock.get(sku)
        if row is None or row.on_hand != STOCK_PER_SKU - shipped:
            problems.append(
                f"{sku}: on_hand {getattr(row, 'on_hand', None)} != "
                f"{STOCK_PER_SKU} counted - {shipped} shipped"
            )
    checks.append("accepted units ≤ stock and on_hand = counted - shipped, per SKU")

    try:
        hub_command(["stock", "check"], env, workdir)
        checks.append("`hub stock check` passes")
    except AssertionError as exc:
        problems.append(str(exc))
