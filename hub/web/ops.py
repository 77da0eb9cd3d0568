"""Operators' routes: `/api/lag`, `/api/dlq`, `/api/overview`, `/api/audit`,
`POST /api/dlq/replay` (bearer token, roles in hub/access.py) and the live
dashboard, `/dashboard` with its data at `/dashboard/data`.

The dashboard page is a static file and carries no token: it reads `/dashboard/data`, which is
served without authentication and therefore holds aggregate figures only (statuses and lag per
group, message rates, outbox backlog, dead-letter count, push latency). Dead-letter errors,
payloads, order or customer details and anything from the config stay behind the bearer token
on `/api/*`. This keeps the token out of a browser page (no prompt, no storage) and lets a wall
screen show the page; anyone who can reach the port sees only what `/metrics` already shows.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hub import audit, deadletters
from hub.access import Role
from hub.bus import BrokerUnavailable
from hub.ops.state import lag_once, ops_state, store_figures, totals_dict
from hub.store.models import DeadLetter

log = structlog.get_logger(__name__)

STATIC = Path(__file__).parent / "static"
DASHBOARD = STATIC / "dashboard.html"
DLQ_LIMIT = 500


async def _lag(runtime: Any) -> dict[str, Any]:
    """The snapshot kept fresh by `lag_loop`, or one poll now when no loop runs (a single
    sample: offset and time lag are right, the status can only be OK or ERR)."""
    state = ops_state(runtime)
    if state.running or not runtime.bootstrap:
        return state.lag
    try:
        return await lag_once(runtime)
    except Exception as exc:
        return {"time": None, "groups": {}, "error": f"{type(exc).__name__}: {exc}"}


def ops_routes(runtime: Any, guard: Any = None) -> list[Route]:
    """The routes to add to `create_app(runtime)`; `guard` is its `api_guard(runtime)`."""
    if guard is None:
        from hub.web.app import api_guard

        guard = api_guard(runtime)

    async def api_lag(_: Request) -> Response:
        return JSONResponse(await _lag(runtime))

    async def api_dlq(request: Request) -> Response:
        if runtime.sessions is None:
            return JSONResponse({"error": "no store in this process"}, status_code=503)
        q = select(DeadLetter).order_by(DeadLetter.id).limit(DLQ_LIMIT)
        if request.query_params.get("all") not in ("1", "true", "yes"):
            q = q.where(DeadLetter.replayed_at.is_(None))
        async with runtime.sessions() as session:
            letters = list((await session.execute(q)).scalars())
        # An error text can quote the payload (a customer's address, say): operators only.
        errors = request.state.principal.role.allows(Role.OPERATOR)
        return JSONResponse(
            [
                {
                    "id": d.id,
                    "consumer": d.consumer,
                    "topic": d.topic,
                    "partition": d.partition,
                    "offset": d.offset,
                    "error": d.error if errors else None,
                    "received_at": _iso(d.received_at),
                    "replayed_at": _iso(d.replayed_at),
                }
                for d in letters
            ]
        )

    async def api_overview(_: Request) -> Response:
        outbox, dlq = await store_figures(runtime)
        return JSONResponse(
            {
                "roles": sorted(runtime.roles),
                "totals": totals_dict(runtime),
                "outbox_backlog": outbox,
                "dlq": dlq,
                "lag": await _lag(runtime),
            }
        )

    async def api_dlq_replay(request: Request) -> Response:
        """Body `{"ids": [1, 2]}` or `{"all": true}`; audited with the token's name as actor."""
        if runtime.sessions is None or runtime.publisher is None:
            return JSONResponse({"error": "no store or broker in this process"}, status_code=503)
        ids = await _replay_ids(request)
        if isinstance(ids, str):
            return JSONResponse({"error": ids}, status_code=400)
        try:
            done = await deadletters.replay_parts(
                runtime.sessions, ids or None, runtime.publisher, request.state.principal.name
            )
        except deadletters.PartlyReplayed as exc:
            # The parts before the failure are replayed and marked; a retry goes on from there.
            if isinstance(exc.cause, BrokerUnavailable):
                return JSONResponse(exc.as_json(), status_code=503)
            log.error("dead letter replay failed", exc_info=exc.cause)
            return JSONResponse(exc.as_json("replay failed; see the log"), status_code=500)
        return JSONResponse(done.as_json())

    async def api_audit(request: Request) -> Response:
        if runtime.sessions is None:
            return JSONResponse({"error": "no store in this process"}, status_code=503)
        q = request.query_params
        try:
            limit = min(max(int(q.get("limit", "100")), 1), DLQ_LIMIT)
        except ValueError:
            return JSONResponse({"error": "limit must be a whole number"}, status_code=400)
        async with runtime.sessions() as session:
            rows = await audit.entries(
                session, limit=limit, actor=q.get("actor"), action=q.get("action")
            )
        return JSONResponse({"entries": rows})

    async def dashboard(_: Request) -> Response:
        html = DASHBOARD.read_bytes()
        return Response(html, media_type="text/html; charset=utf-8", headers=_page_headers(html))

    async def dashboard_data(_: Request) -> Response:
        return JSONResponse(await dashboard_payload(runtime), headers={"Cache-Control": "no-store"})

    return [
        Route("/api/lag", guard("GET", "/api/lag", api_lag)),
        Route("/api/dlq", guard("GET", "/api/dlq", api_dlq)),
        Route(
            "/api/dlq/replay",
            guard("POST", "/api/dlq/replay", api_dlq_replay),
            methods=["POST"],
        ),
        Route("/api/overview", guard("GET", "/api/overview", api_overview)),
        Route("/api/audit", guard("GET", "/api/audit", api_audit)),
        Route("/dashboard", dashboard),
        Route("/dashboard/data", dashboard_data),
    ]


async def dashboard_payload(runtime: Any) -> dict[str, Any]:
    """Aggregates only (see the module docstring): no payloads, errors or personal data."""
    state = ops_state(runtime)
    lag = await _lag(runtime)
    outbox: int | None
    dlq: int | None
    try:
        outbox, dlq = await store_figures(runtime)
    except Exception:
        outbox = dlq = None
    totals = totals_dict(runtime)
    return {
        "time": lag.get("time"),
        "groups": {
            g: {
                "status": v["status"],
                "max_lag": v["max_lag"],
                "max_lag_seconds": v["max_lag_seconds"],
                "sum_lag": v["sum_lag"],
                "partitions": [
                    {k: p[k] for k in ("topic", "partition", "lag", "lag_seconds", "status")}
                    for p in v["partitions"]
                ],
            }
            for g, v in lag.get("groups", {}).items()
        },
        "totals": {
            k: totals[k] for k in ("applied", "duplicates", "dead_lettered", "accepted", "rejected")
        },
        "outbox_backlog": outbox,
        "dlq": dlq,
        "history": list(state.history),
    }


async def _replay_ids(request: Request) -> list[int] | str:
    """The ids a replay request names (empty: every pending one), or what is wrong with it."""
    try:
        body = await request.json()
    except ValueError:
        return 'the body must be JSON: {"ids": [1, 2]} or {"all": true}'
    if not isinstance(body, dict):
        return 'the body must be a JSON object: {"ids": [1, 2]} or {"all": true}'
    ids = body.get("ids") or []
    if body.get("all") is True and not ids:
        return []
    if not ids or not isinstance(ids, list) or not all(type(i) is int for i in ids):
        return '"ids" must be a non-empty list of dead letter ids, or give {"all": true}'
    return ids


def _page_headers(html: bytes) -> dict[str, str]:
    """A strict Content-Security-Policy: only the page's own inline script (by its hash) runs,
    it may fetch from this origin only, and nothing may frame the page."""
    scripts = re.findall(rb"<script>(.*?)</script>", html, re.S)
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(s).digest()).decode()}'" for s in scripts
    )
    sources = hashes or "'none'"
    policy = (
        f"default-src 'none'; script-src {sources}; "
        "style-src 'unsafe-inline'; connect-src 'self'; img-src 'self'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    )
    return {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None
