"""Operators' routes: `/api/lag`, `/api/dlq`, `/api/overview` (bearer token) and the live
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

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hub.ops.state import lag_once, ops_state, store_figures, totals_dict
from hub.store.models import DeadLetter

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


def ops_routes(runtime: Any) -> list[Route]:
    """The routes to add to `create_app(runtime)`."""
    from hub.web.app import protected

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
        return JSONResponse(
            [
                {
                    "id": d.id,
                    "consumer": d.consumer,
                    "topic": d.topic,
                    "partition": d.partition,
                    "offset": d.offset,
                    "error": d.error,
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

    async def dashboard(_: Request) -> Response:
        html = DASHBOARD.read_bytes()
        return Response(html, media_type="text/html; charset=utf-8", headers=_page_headers(html))

    async def dashboard_data(_: Request) -> Response:
        return JSONResponse(await dashboard_payload(runtime), headers={"Cache-Control": "no-store"})

    return [
        Route("/api/lag", protected(runtime, api_lag)),
        Route("/api/dlq", protected(runtime, api_dlq)),
        Route("/api/overview", protected(runtime, api_overview)),
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
