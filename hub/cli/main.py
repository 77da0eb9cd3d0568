"""`hub`: every operator command (see INTERFACE.md). Data commands take `--json`."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy import select

from hub.cli.common import (
    console,
    counted_progress,
    db_session,
    db_sessions,
    fail,
    guarded,
    out,
    plain,
    print_json,
    run,
    server_settings,
    settings,
)
from hub.cli.stock_report import report as stock_report

app = typer.Typer(
    help="Integration hub: purchase, sales and inventory in one truth.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
topics_app = typer.Typer(help="Kafka topics.", no_args_is_help=True)
stock_app = typer.Typer(help="Stock: show, count, check, repair.", no_args_is_help=True)
dlq_app = typer.Typer(help="Dead letters.", no_args_is_help=True)
audit_app = typer.Typer(help="Audit log of operator actions.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(topics_app, name="topics")
app.add_typer(stock_app, name="stock")
stock_app.command("report")(stock_report)
app.add_typer(dlq_app, name="dlq")
app.add_typer(audit_app, name="audit")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]


@app.command()
def serve(
    consumers: Annotated[int, typer.Option(help="Core consumers in this process.")] = 1,
) -> None:
    """Every role in one process: gateway, core consumers, outbox relay, connector workers."""
    from hub.app import ROLES
    from hub.server import serve as _serve

    run(_serve(server_settings(), set(ROLES), consumers=consumers))


@app.command("run")
def run_role(
    role: Annotated[str, typer.Argument(help="gateway | core | relay | connector")],
    name: Annotated[str | None, typer.Argument(help="connector account, for `connector`")] = None,
) -> None:
    """One role alone, for scaled deployments (migrations are a separate `hub db upgrade`)."""
    from hub.server import serve as _serve

    roles = {
        "gateway": {"gateway"},
        "core": {"core"},
        "relay": {"relay"},
        "connector": {"connectors"},
    }
    if role not in roles:
        raise fail(f"unknown role {role!r}: use gateway, core, relay or connector", 2)
    s = server_settings()
    if role == "connector" and name and name not in s.hub.accounts:
        raise fail(f"unknown account {name!r}", 2)
    run(
        _serve(
            s,
            roles[role],
            migrate=s.db_url.startswith("sqlite"),
            only_account=name if role == "connector" else None,
        )
    )


@app.command()
def demo(
    keep_running: Annotated[bool, typer.Option(help="Keep serving after the scenario.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """The end-to-end scenario on the embedded default; exits 0 only if every invariant held."""
    from hub.demo import run_demo

    ok = run(run_demo(settings(), keep_running=keep_running, as_json=as_json))
    raise typer.Exit(0 if ok else 1)


@app.command("asyncapi")
def asyncapi(
    output: Annotated[Path | None, typer.Option(help="Write to this file.")] = None,
) -> None:
    """The AsyncAPI document of every topic and message (JSON, which is also valid YAML)."""
    import json

    from hub.asyncapi import document

    text = json.dumps(document(), indent=2, ensure_ascii=False) + "\n"
    if output:
        output.write_text(text)
    else:
        out.print(text, end="", markup=False, highlight=False, soft_wrap=True)


@db_app.command("upgrade")
def db_upgrade(as_json: JsonOpt = False) -> None:
    """Apply migrations."""
    from hub.store.db import make_engine
    from hub.store.migrate import current, upgrade

    s = settings()

    async def go() -> str | None:
        engine = make_engine(s.db_url)
        try:
            await upgrade(engine)
            return await current(engine)
        finally:
            await engine.dispose()

    rev = run(go())
    if as_json:
        print_json({"revision": rev})
    else:
        out.print(f"database at revision [bold]{plain(rev)}[/]")


@topics_app.command("ensure")
def topics_ensure(as_json: JsonOpt = False) -> None:
    """Create the topics with the configured partitions."""
    from hub.kafka import clients
    from hub.kafka.topics import ensure_topics

    s = settings()
    try:
        bootstrap = clients.bootstrap(s)
    except clients.NoBroker as exc:
        raise fail(str(exc)) from None
    created = run(
        ensure_topics(
            bootstrap,
            partitions=s.topic_partitions,
            replication=s.topic_replication,
            client=clients.client_kwargs(s),
        )
    )
    if as_json:
        print_json({"created": created, "partitions": s.topic_partitions})
    else:
        out.print(f"created {len(created)} topic(s): {plain(', '.join(created) or '-')}")


@stock_app.command("show")
def stock_show(sku: str, as_json: JsonOpt = False) -> None:
    """On hand, reserved, inbound, available-to-sell per channel, per location."""
    from hub.core.batch import rules_from_config
    from hub.queries import UnknownSku, stock_view

    s = settings()

    async def go() -> dict[str, object]:
        async with db_session(s) as session:
            return await stock_view(session, sku, rules_from_config(s.hub.channels))

    try:
        view = run(go())
    except UnknownSku as exc:
        raise fail(str(exc)) from None
    if as_json:
        print_json(view)
        return
    t = Table(
        title=f"{plain(sku)}: on hand {view['on_hand']}, reserved {view['reserved']}, "
        f"inbound {view['inbound']}"
    )
    for col in ("location", "on_hand", "reserved", "inbound", "available"):
        t.add_column(col)
    for loc in view["locations"]:  # type: ignore[attr-defined]
        t.add_row(
            *(plain(loc[c]) for c in ("location", "on_hand", "reserved", "inbound", "available"))
        )
    out.print(t)
    for ch, v in view["channels"].items():  # type: ignore[attr-defined]
        presale = f", presale {v['presale_available']}" if "presale_available" in v else ""
        out.print(f"channel [bold]{plain(ch)}[/]: available {v['available']}{presale}")


@stock_app.command("count")
def stock_count(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    count_id: Annotated[
        str | None, typer.Option(help="Stocktake id (default: day+content)")
    ] = None,
    counted_at: Annotated[
        str | None,
        typer.Option(
            help="When the stock was counted, ISO 8601 with its offset (default: now). Movements "
            "journaled after it stay on top of the count."
        ),
    ] = None,
    new_location: Annotated[
        list[str] | None,
        typer.Option(
            help="A location counted for the first time (else a location the hub "
            "does not know is refused as a typo)."
        ),
    ] = None,
    actor: Annotated[str, typer.Option(help="Who counted (audit log).")] = "cli",
    as_json: JsonOpt = False,
) -> None:
    """Stocktake: set counted quantities from a CSV (sku,location,quantity), as of the time the
    stock was counted: what was sold, returned or received after that stays counted."""
    from hub.audit import on_hand_of, record
    from hub.bus import BrokerUnavailable
    from hub.kafka import clients
    from hub.kafka.producer import KafkaPublisher
    from hub.stockfile import StockFileError, count_envelopes, parse

    s = settings()
    at = _counted_at(counted_at) or datetime.now(UTC)
    try:
        text = file.read_text(encoding="utf-8-sig")  # a spreadsheet's UTF-8 CSV starts with a BOM
        cid, envelopes = count_envelopes(text, count_id, at)
    except (StockFileError, UnicodeDecodeError) as exc:
        raise fail(f"{file}: {exc}") from None
    lines = parse(text)
    counted = {f"{c.sku}@{c.location}": c.quantity for c in lines}
    try:
        bootstrap = clients.bootstrap(s)
    except clients.NoBroker as exc:
        raise fail(str(exc)) from None

    async def locations() -> set[str]:
        from hub.store.models import Stock

        async with db_session(s) as session:
            stored = set((await session.execute(select(Stock.location).distinct())).scalars())
        return stored | {loc for rule in s.hub.channels.values() for loc in rule.locations}

    known = run(locations()) | set(new_location or ())
    unknown = [c for c in lines if c.location not in known]
    if unknown:
        problems = [
            f"line {c.line}: location {c.location!r} is not one the hub keeps stock at"
            for c in unknown[:20]
        ]
        raise fail(
            f"{file}: " + "; ".join(problems) + f" (known: {', '.join(sorted(known))}); "
            "--new-location NAME counts a location for the first time"
        )

    async def go() -> int:
        async with db_session(s) as session:  # before: the core may apply the count at once
            before = await on_hand_of(session, counted)
        pub = KafkaPublisher(bootstrap, client=clients.client_kwargs(s))
        sent = 0
        try:
            await pub.start()
            with counted_progress("stocktake", quiet=as_json) as bar:
                task = bar.add_task("publish", total=len(envelopes))
                for i in range(0, len(envelopes), COUNT_CHUNK):
                    part = envelopes[i : i + COUNT_CHUNK]
                    await pub.publish(part)
                    sent += len(part)
                    bar.update(task, completed=sent)
        except BrokerUnavailable:
            return -sent - 1  # how many went, told apart from a success
        finally:
            await pub.stop()
        async with db_session(s) as session, session.begin():
            await record(
                session,
                actor,
                "stock.count",
                cid,
                before={"on_hand": before},
                after={
                    "file": str(file),
                    "lines": len(envelopes),
                    "counted": counted,
                    "counted_at": at.isoformat(),
                },
            )
        return sent

    sent = run(go())
    if sent < 0:
        done = -sent - 1
        again = f"--count-id {cid} --counted-at {at.isoformat()}"
        raise fail(
            f"stocktake {cid}: the broker failed after the first {done} of {len(envelopes)} "
            f"line(s) were published; run the same command with {again} to publish the rest "
            "(lines already published count once)"
        )
    if as_json:
        print_json({"count_id": cid, "published": len(envelopes)})
    else:
        out.print(f"stocktake {plain(cid)}: {len(envelopes)} line(s) published")


COUNT_CHUNK = 2_000  # lines a publish: each acknowledged before the next is sent


def _counted_at(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise fail(f"--counted-at {value!r} is not an ISO 8601 time") from None
    if at.tzinfo is None:
        raise fail(f"--counted-at {value!r} needs its offset, e.g. {value}+08:00 or {value}Z")
    at = at.astimezone(UTC)
    if at > datetime.now(UTC) + timedelta(minutes=5):
        raise fail(f"--counted-at {value!r} is in the future")
    return at


@stock_app.command("check")
def stock_check(as_json: JsonOpt = False) -> None:
    """Check every stored total: no oversell, on_hand = Σ journal, reserved = Σ open lines."""
    from hub.queries import invariant_problems

    s = settings()

    async def go() -> list[str]:
        async with db_session(s) as session:
            return await invariant_problems(session)

    problems = run(go())
    if as_json:
        print_json({"ok": not problems, "problems": problems})
    else:
        for p in problems:
            console.print(f"[red]✗[/] {plain(p)}")
        out.print(
            "[green]all stock invariants hold[/]"
            if not problems
            else f"[red]{len(problems)} problem(s)[/]"
        )
    raise typer.Exit(0 if not problems else 1)


@stock_app.command("repair")
def stock_repair(
    fix: Annotated[bool, typer.Option("--fix", help="Correct what disagrees.")] = False,
    actor: Annotated[str, typer.Option(help="Who repairs (audit log).")] = "cli",
    as_json: JsonOpt = False,
) -> None:
    """Recompute reserved from open reservations and on_hand from the journal; with --fix,
    correct them and publish the channels' levels that change."""
    from hub.core.batch import rules_from_config
    from hub.repair import Repair, repair_stock
    from hub.store.outbox import announce

    s = settings()

    async def go() -> Repair:
        async with db_session(s) as session:
            async with session.begin():
                done = await repair_stock(
                    session, fix=fix, actor=actor, rules=rules_from_config(s.hub.channels)
                )
            if done.levels_published:
                await announce(session.bind)  # the levels are in the outbox: wake the relay
            return done

    done = run(go())
    fixes = [f.as_json() for f in done.fixes]
    held = [f.as_json() for f in done.held_back]
    if as_json:
        print_json(
            {
                "fixed": fix,
                "mismatches": fixes,
                "levels_published": done.levels_published,
                "held_back": held,
            }
        )
    else:
        for f in fixes:
            console.print(
                f"{plain(f['sku'])}@{plain(f['location'])} {plain(f['field'])}: "
                f"stored {f['stored']}, "
                f"recomputed {f['recomputed']}" + (" (fixed)" if fix else "")
            )
        for f in held:
            console.print(
                f"[yellow]{plain(f['sku'])}@{plain(f['location'])}: the journal holds "
                f"{f['recomputed']}, fewer "
                f"than the units reserved on it; on hand left at {f['stored']} for a person to "
                "decide (the difference was never journaled)[/]"
                if f["field"] == "on_hand"
                else f"[yellow]{plain(f['sku'])}@{plain(f['location'])}: reserved stored "
                f"{f['stored']}, "
                f"{f['recomputed']} held by open reservations, more than its on hand: left[/]"
            )
        out.print(
            f"{len(fixes)} mismatch(es)"
            + (f" fixed, {done.levels_published} level(s) published" if fix and fixes else "")
            + (f"; {len(held)} held back" if held else "")
        )
    raise typer.Exit(1 if held or (fixes and not fix) else 0)


@dlq_app.command("list")
def dlq_list(
    all_: Annotated[bool, typer.Option("--all", help="Include replayed ones.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Dead letters with their error and origin."""
    from hub.store.models import DeadLetter

    s = settings()

    async def go() -> list[dict[str, object]]:
        async with db_session(s) as session:
            q = select(DeadLetter).order_by(DeadLetter.id)
            if not all_:
                q = q.where(DeadLetter.replayed_at.is_(None))
            return [
                {
                    "id": d.id,
                    "consumer": d.consumer,
                    "topic": d.topic,
                    "partition": d.partition,
                    "offset": d.offset,
                    "error": d.error,
                    "received_at": d.received_at,
                    "replayed_at": d.replayed_at,
                    "size": len(d.payload or b""),
                }
                for d in (await session.execute(q)).scalars()
            ]

    rows = run(go())
    if as_json:
        print_json(rows)
        return
    t = Table(title=f"{len(rows)} dead letter(s)")
    for col in ("id", "origin", "error", "received"):
        t.add_column(col)
    for r in rows:
        t.add_row(
            str(r["id"]),
            plain(f"{r['topic']}/{r['partition']}@{r['offset']}"),
            plain(str(r["error"])[:80]),
            plain(str(r["received_at"])[:19]),
        )
    out.print(t)


@dlq_app.command("replay")
def dlq_replay(
    ids: Annotated[list[int] | None, typer.Argument(help="Dead letter ids")] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Every dead letter not yet replayed.")
    ] = False,
    actor: Annotated[str, typer.Option(help="Who replays (audit log).")] = "cli",
    as_json: JsonOpt = False,
) -> None:
    """Send dead letters back to their topic (after a fix), with their original bytes."""
    from hub import deadletters
    from hub.kafka import clients
    from hub.kafka.producer import KafkaPublisher

    if not ids and not all_:
        raise fail("give dead letter ids or --all", 2)
    s = settings()
    try:
        bootstrap = clients.bootstrap(s)
    except clients.NoBroker as exc:
        raise fail(str(exc)) from None

    async def go() -> deadletters.Replayed:
        class Sender:  # the broker is reached only if there is something to send
            pub: KafkaPublisher | None = None

            async def send_many(self, items: deadletters.Records) -> None:
                if self.pub is None:
                    pub = KafkaPublisher(bootstrap, client=clients.client_kwargs(s))
                    try:
                        await pub.start()
                    except BaseException:
                        await pub.producer.stop()  # what the failed start opened
                        raise
                    self.pub = pub
                await self.pub.send_many(items)

        sender = Sender()
        try:
            async with db_sessions(s) as sessions:
                with counted_progress("replaying", quiet=as_json) as progress:
                    task = progress.add_task("replay", total=None)
                    return await deadletters.replay_parts(
                        sessions,
                        ids,
                        sender,
                        actor,
                        on_total=lambda n: progress.update(task, total=n),
                        on_part=lambda n: progress.advance(task, n),
                    )
        finally:
            if sender.pub is not None:
                await sender.pub.stop()

    try:
        done = run(go())
    except deadletters.PartlyReplayed as exc:
        if as_json:
            print_json(exc.as_json())
        raise fail(str(exc)) from None
    if as_json:
        print_json(done.as_json())
        return
    out.print(f"replayed {len(done.sent)} dead letter(s)")
    for letter, version in done.superseded.items():
        out.print(
            f"  #{letter}: a stock level older than version {version}, published since; not sent"
        )


@audit_app.command("list")
def audit_list(
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 100,
    by: Annotated[str | None, typer.Option(help="Only this actor (a token's name).")] = None,
    action: Annotated[str | None, typer.Option(help="Only this action, e.g. dlq.replay.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Operator actions: who, what, when, before and after (newest first)."""
    from hub.audit import entries

    s = settings()

    async def go() -> list[dict[str, object]]:
        async with db_session(s) as session:
            return await entries(session, limit=limit, actor=by, action=action)

    rows = run(go())
    if as_json:
        print_json({"entries": rows})
        return
    t = Table(title=f"{len(rows)} audit row(s)")
    for col in ("id", "at", "actor", "action", "target"):
        t.add_column(col)
    for r in rows:
        t.add_row(
            str(r["id"]),
            plain(str(r["at"])[:19]),
            plain(r["actor"]),
            plain(r["action"]),
            plain(r["target"]),
        )
    out.print(t)


def _mount_optional() -> None:
    """Command groups that live with their feature (finance, purchasing, connectors, ops)."""
    for module, name in (
        ("hub.cli.books", "books"),
        ("hub.cli.po", "po"),
        ("hub.cli.connector", "connector"),
        ("hub.cli.ops", None),
        ("hub.cli.bench", None),
    ):
        try:
            mod = importlib.import_module(module)
        except ImportError:
            continue
        if name and hasattr(mod, "app"):
            app.add_typer(mod.app, name=name)
        if hasattr(mod, "register"):
            mod.register(app)


_mount_optional()


def _guard(group: typer.Typer, prefix: str = "") -> None:
    """Every command checks the caller's role first (see hub/access.py)."""
    for info in group.registered_commands:
        if info.callback is not None:
            name = info.name or info.callback.__name__.lower().replace("_", "-")
            info.callback = guarded(prefix + name, info.callback)
    for sub in group.registered_groups:
        if sub.typer_instance is not None:
            _guard(sub.typer_instance, f"{prefix}{sub.name} ")


_guard(app)
