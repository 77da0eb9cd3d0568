"""Starlette app: `/webhooks/…` (gateway role), `/metrics`, `/healthz`, `/readyz`, `/api/*`,
`/asyncapi`, `/dashboard`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hub import metrics
from hub.access import AccessDenied, Tokens, endpoint_role
from hub.app import Runtime
from hub.asyncapi import document
from hub.queries import UnknownSku, stock_view
from hub.web.ops import ops_routes

Handler = Callable[[Request], Awaitable[Response]]


def _bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None


def api_guard(runtime: Runtime) -> Callable[[str, str, Handler], Handler]:
    """`guard(method, path, handler)`: the handler behind a bearer token whose role the matrix
    (`hub.access.ENDPOINTS`) allows; the caller is `request.state.principal` (its name is the
    actor of audit rows). 401 without or with a bad token, 403 when the role is not enough, 403
    when no token is configured at all (the operators' API is off)."""
    tokens = Tokens.from_settings(runtime.settings)  # a missing `env:` secret fails at start

    def guard(method: str, path: str, handler: Handler) -> Handler:
        needed = endpoint_role(method, path)

        async def wrapped(request: Request) -> Response:
            if not tokens.configured:
                return JSONResponse(
                    {"error": "the operators' API is disabled (no access token configured)"},
                    status_code=403,
                )
            try:
                request.state.principal = tokens.authorise(_bearer(request), needed)
            except AccessDenied as exc:
                if exc.authenticated:
                    return JSONResponse({"error": str(exc)}, status_code=403)
                return JSONResponse(
                    {"error": "missing or invalid bearer token"},
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
            return await handler(request)

        return wrapped

    return guard


def create_app(runtime: Runtime) -> Starlette:
    guard = api_guard(runtime)

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        status = await runtime.ready()
        ok = all(status.values())
        return JSONResponse({"ready": ok, **status}, status_code=200 if ok else 503)

    async def metrics_endpoint(_: Request) -> Response:
        return Response(metrics.exposition(), media_type=metrics.CONTENT_TYPE)

    async def asyncapi(_: Request) -> Response:
        return JSONResponse(document())

    async def api_stock(request: Request) -> Response:
        assert runtime.sessions is not None
        async with runtime.sessions() as session:
            try:
                view = await stock_view(session, request.path_params["sku"], runtime.rules)
            except UnknownSku as exc:
                return JSONResponse({"error": str(exc)}, status_code=404)
        return JSONResponse(view)

    routes: list[Any] = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics_endpoint),
        Route("/asyncapi", asyncapi),
        Route("/api/stock/{sku:path}", guard("GET", "/api/stock/{sku}", api_stock)),
    ]
    routes.extend(ops_routes(runtime, guard))  # before the gateway's catch-all mount
    routes.extend(_optional_routes(runtime))
    return Starlette(routes=routes)


def _optional_routes(runtime: Runtime) -> list[Any]:
    """Routes of roles that are wired only when this process runs them."""
    routes: list[Any] = []
    if "gateway" in runtime.roles and runtime.publisher is not None:
        try:
            from hub.gateway.app import create_gateway
        except ImportError:
            return routes
        # The gateway's routes themselves, not its app mounted: a webhook then passes one
        # Starlette middleware stack, not two (the gateway app adds no middleware of its own).
        routes.extend(create_gateway(runtime.settings.hub, runtime.publisher).routes)
    return routes
