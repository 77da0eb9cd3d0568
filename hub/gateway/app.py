"""`POST /webhooks/{connector}/{account}`: verify, map, publish, then answer.

Order of checks (cheapest and least trusting first): unknown account or connector mismatch → 404;
declared or streamed body over the limit → 413; content type → 415; signature on the raw bytes,
before anything parses them → 401; mapping → 400 with a JSON reason; publish and wait for the
broker's acknowledgement (acks=all) within a budget below Shopify's 5 s → 200, else 503 with
`Retry-After` so the platform delivers again. Nothing a sender can send yields a 500: unexpected
errors while parsing are logged and answered 400.

A delivery is verified with the secrets of the account named in the URL only, so one tenant's
secret can never post for another account.

Every answer carries `X-Correlation-ID`: the id the webhook's messages carry on Kafka
(`ce_correlationid`, see `hub.gateway.correlation`), bound in the log context for the request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import pydantic_core
import structlog
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connectors.base import Account, ShopConnector, connector_names, get_connector
from connectors.errors import MalformedPayload, PayloadTooLarge, SignatureInvalid
from hub import metrics
from hub.bus import BrokerUnavailable, Publisher
from hub.config import ConfigError, HubConfig
from hub.gateway import correlation
from hub.gateway.openapi import openapi_document
from hub.observe import MAX_LOGGED_IDS

log = structlog.get_logger(__name__)

JSON_TYPES = frozenset({"application/json"})
# WooCommerce activates a webhook with a form-encoded ping (`webhook_id=N`).
FORM_TYPE = "application/x-www-form-urlencoded"
RETRY_AFTER_SECONDS = "5"


def _utcnow() -> datetime:
    return datetime.now(UTC)


# The largest body a webhook may have: a Shopify order of the most lines the mapping takes
# (500) repeats every line in its fulfilments and refunds, about 1.5–2 KB each, so an
# `orders/cancelled` of such an order reaches 3 MB.
MAX_BODY = 4 * 1_048_576


def create_gateway(
    config: HubConfig,
    publisher: Publisher,
    *,
    max_body: int = MAX_BODY,
    clock: Callable[[], datetime] = _utcnow,
    publish_timeout: float = 4.0,
    connectors: Mapping[str, ShopConnector] | None = None,
) -> Starlette:
    """The gateway as an ASGI app. `connectors` overrides the registry (tests, extra platforms)."""
    registry: dict[str, ShopConnector] = dict(connectors or {})

    def connector_for(name: str) -> ShopConnector | None:
        if name in registry:
            return registry[name]
        if connectors is None and name in connector_names():
            try:
                registry[name] = get_connector(name)
            except (ImportError, AttributeError):
                log.exception("gateway.connector_unavailable", connector=name)
                return None
            return registry[name]
        return None

    async def webhook(request: Request) -> Response:
        upstream = correlation.upstream_ids(request.headers)
        # The request's provisional id, then its messages' once they are known: the last one
        # bound in the log context is the one the answer carries.
        bound = [correlation.provisional()]
        with structlog.contextvars.bound_contextvars(correlation_id=bound[0], **upstream):
            response = await handle(request, bound)
        response.headers[correlation.HEADER] = bound[-1]
        return response

    async def handle(request: Request, bound: list[str]) -> Response:
        started = time.perf_counter()
        name = request.path_params["connector"]
        account_name = request.path_params["account"]
        account_cfg = config.accounts.get(account_name)
        if account_cfg is None or account_cfg.connector != name:
            return _answer(None, "unknown_account", 404, {"error": "unknown account"}, started)
        connector = connector_for(name)
        if connector is None:
            return _answer(None, "unknown_account", 404, {"error": "unknown connector"}, started)
        account = Account(account_name, account_cfg)

        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                return _answer(name, "malformed", 400, _reason("bad Content-Length"), started)
            if int(declared) > max_body:
                return _answer(name, "too_large", 413, _reason(f"over {max_body} bytes"), started)
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type not in JSON_TYPES and not (
            name == "woocommerce" and content_type == FORM_TYPE
        ):
            return _answer(name, "malformed", 415, _reason("expected application/json"), started)
        try:
            body = await _read_body(request, max_body)
        except PayloadTooLarge as exc:
            return _answer(name, "too_large", 413, _reason(str(exc)), started)
        except ClientDisconnect:
            return _answer(name, "malformed", 400, _reason("client disconnected"), started)

        now = clock()
        headers = dict(request.headers.items())
        try:
            connector.verify(body, headers, account, now)
        except SignatureInvalid as exc:
            log.info(
                "gateway.unauthorized", connector=name, account=account_name, reason=exc.reason
            )
            return _answer(name, "unauthorized", 401, {"error": "unauthorized"}, started)
        except ConfigError as exc:
            log.error("gateway.secret_unavailable", account=account_name, error=str(exc))
            return _unavailable(name, started)
        except Exception:
            log.exception("gateway.verify_failed", connector=name, account=account_name)
            return _answer(name, "unauthorized", 401, {"error": "unauthorized"}, started)

        try:
            envelopes = connector.parse(body, headers, account, now)
        except MalformedPayload as exc:
            log.info("gateway.malformed", connector=name, account=account_name, reason=exc.reason)
            return _answer(name, "malformed", 400, _reason(exc.reason), started)
        except ConfigError as exc:
            log.error("gateway.account_misconfigured", account=account_name, error=str(exc))
            return _unavailable(name, started)
        except Exception:
            log.exception("gateway.parse_failed", connector=name, account=account_name)
            return _answer(name, "malformed", 400, _reason("payload could not be mapped"), started)

        corr = correlation.derive(envelopes)
        if corr is not None:
            structlog.contextvars.bind_contextvars(correlation_id=corr)
            bound.append(corr)
            envelopes = [e if e.correlation_id else e.correlated(corr) for e in envelopes]
        if envelopes:
            try:
                async with asyncio.timeout(publish_timeout):  # no task per request, unlike wait_for
                    await publisher.publish(envelopes)
            except (BrokerUnavailable, TimeoutError) as exc:
                log.warning("gateway.broker_unavailable", account=account_name, error=repr(exc))
                return _unavailable(name, started)
            except Exception:
                log.exception("gateway.publish_failed", account=account_name)
                return _unavailable(name, started)
        ids = [e.id for e in envelopes]
        orders = sorted({k for e in envelopes if (k := getattr(e.data, "order_key", None))})
        log.info(
            "gateway.accepted",
            connector=name,
            account=account_name,
            messages=len(ids),
            message_ids=ids[:MAX_LOGGED_IDS],
            order_keys=orders[:MAX_LOGGED_IDS],
        )
        return _answer(name, "accepted", 200, {"accepted": len(ids), "ids": ids}, started)

    async def openapi(request: Request) -> Response:
        return JSONResponse(openapi_document(sorted(set(connector_names()) | set(registry))))

    return Starlette(
        routes=[
            Route("/webhooks/{connector}/{account}", webhook, methods=["POST"]),
            Route("/openapi.json", openapi, methods=["GET"]),
        ]
    )


async def _read_body(request: Request, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _reason(reason: str) -> dict[str, Any]:
    return {"error": "rejected", "reason": reason}


def _unavailable(connector: str, started: float) -> Response:
    response = _answer(
        connector, "unavailable", 503, {"error": "broker unavailable, retry later"}, started
    )
    response.headers["Retry-After"] = RETRY_AFTER_SECONDS
    return response


# The labelled series of each (connector, outcome): looking them up by label on every request
# cost more than the rest of the bookkeeping. Connectors are the registry's, outcomes the few
# above, so the mapping stays small.
_series: dict[tuple[str, str], tuple[Any, Any]] = {}


def _answer(
    connector: str | None, outcome: str, status: int, body: dict[str, Any], started: float
) -> Response:
    label = connector or "unknown"
    series = _series.get((label, outcome))
    if series is None:
        series = _series[label, outcome] = (
            metrics.WEBHOOKS_RECEIVED.labels(connector=label, outcome=outcome),
            metrics.WEBHOOK_LATENCY.labels(connector=label),
        )
    received, latency = series
    received.inc()
    latency.observe(time.perf_counter() - started)
    return _JsonAnswer(body, status)


class _JsonAnswer(JSONResponse):
    """A JSON answer rendered by pydantic's serializer: the same compact UTF-8 bytes as
    Starlette's `json.dumps`, for a fraction of its cost on every webhook."""

    def render(self, content: Any) -> bytes:
        return pydantic_core.to_json(content)
