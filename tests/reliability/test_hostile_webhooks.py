"""Hostile input at the gateway: schemathesis against its own `/openapi.json`, then each attack
the issue names, one by one. Whatever arrives: no 5xx, and nothing without a valid signature of
the account in the URL is published (a recording publisher stands in for the broker)."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from starlette.testclient import TestClient

from connectors.base import sign
from connectors.shopify.simulator import ShopifySimulator
from hub.bus import Publisher
from hub.config import AccountConfig, HubConfig
from hub.demo_shops import served
from hub.gateway import create_gateway
from hub.kafka.embedded import free_port
from schemas.envelope import Envelope

ACME_SECRET = "acme-secret"
OTHER_SECRET = "other-secret"
WOO_SECRET = "corner-secret"
MAX_BODY = 64 * 1024
FUZZ_EXAMPLES = 1400


class RecordingPublisher(Publisher):
    """The real Publisher port; remembers every batch it acknowledged."""

    def __init__(self) -> None:
        self.batches: list[list[Envelope]] = []

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        self.batches.append(list(envelopes))

    @property
    def published(self) -> list[Envelope]:
        return [e for b in self.batches for e in b]


def _config() -> HubConfig:
    return HubConfig(
        accounts={
            "acme": AccountConfig(connector="shopify", webhook_secret=ACME_SECRET),
            "other": AccountConfig(connector="shopify", webhook_secret=OTHER_SECRET),
            "corner": AccountConfig(connector="woocommerce", webhook_secret=WOO_SECRET),
        }
    )


FUZZ_PUBLISHER = RecordingPublisher()
FUZZ_APP = create_gateway(_config(), FUZZ_PUBLISHER, max_body=MAX_BODY, publish_timeout=0.5)
SCHEMA = schemathesis.openapi.from_asgi("/openapi.json", FUZZ_APP)
FUZZ_CLIENT = TestClient(FUZZ_APP, raise_server_exceptions=True)
STATUSES: list[int] = []


@SCHEMA.parametrize()
@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_schemathesis_requests_from_the_openapi_document_never_get_a_5xx(case) -> None:  # type: ignore[no-untyped-def]
    """Every generated request (valid and invalid by the schema), as sent and once more signed
    with the secret of a real account, so the fuzzed bodies get past the signature to the parser."""
    response = case.call()
    STATUSES.append(response.status_code)
    assert response.status_code < 500, (case.as_curl_command(), response.text)
    if isinstance(case.body, (dict, list)) and case.path_parameters:
        body = json.dumps(case.body).encode()
        connector = case.path_parameters.get("connector")
        account, secret, sig = (
            ("corner", WOO_SECRET, "X-WC-Webhook-Signature")
            if connector == "woocommerce"
            else ("acme", ACME_SECRET, "X-Shopify-Hmac-Sha256")
        )
        headers = {k: v for k, v in (case.headers or {}).items() if isinstance(v, str)}
        headers.update({"Content-Type": "application/json", sig: sign(secret, body)})
        headers.pop("X-Shopify-Triggered-At", None)
        try:
            signed = FUZZ_CLIENT.post(
                f"/webhooks/{connector or 'shopify'}/{account}", content=body, headers=headers
            )
        except (httpx.InvalidURL, httpx.LocalProtocolError, UnicodeEncodeError, ValueError):
            return  # a header the client itself refuses to send
        STATUSES.append(signed.status_code)
        assert signed.status_code < 500, (headers, body[:300], signed.text)
        if signed.status_code == 200:
            assert signed.json()["accepted"] == len(signed.json()["ids"])


def test_the_fuzz_made_thousands_of_requests() -> None:
    """Runs after the schemathesis test in file order; says how much it tried."""
    if not STATUSES:
        pytest.skip("the schemathesis test did not run in this session")
    counts = {s: STATUSES.count(s) for s in sorted(set(STATUSES))}
    print(f"schemathesis: {len(STATUSES)} requests, statuses {counts}")
    assert len(STATUSES) >= 2000
    assert max(STATUSES) < 500


# -- explicit attacks ----------------------------------------------------------------------------


SIM = ShopifySimulator(webhook_secret=ACME_SECRET)
SIM.add_product("TEE", 10)


@pytest.fixture
def publisher() -> RecordingPublisher:
    return RecordingPublisher()


@pytest.fixture
async def client(publisher: RecordingPublisher):  # type: ignore[no-untyped-def]
    app = create_gateway(_config(), publisher, max_body=MAX_BODY, publish_timeout=0.5)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=True)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as c:
        yield c


def _order(n: int, sku: str = "TEE") -> dict[str, object]:
    return SIM.make_order(n, [(sku, 1, "10.00")], decrement=False)


def _signed(body: bytes, secret: str = ACME_SECRET, **extra: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Shopify-Hmac-Sha256": sign(secret, body),
        "X-Shopify-Topic": "orders/create",
        "X-Shopify-Event-Id": "evt-hostile",
        "X-Shopify-Webhook-Id": "wh-hostile",
        **extra,
    }


async def test_a_signed_webhook_replayed_outside_the_window_is_refused(client, publisher) -> None:  # type: ignore[no-untyped-def]
    old = datetime.now(UTC) - timedelta(hours=7)
    headers, body = SIM.webhook("orders/create", _order(1), triggered_at=old)
    assert (
        await client.post("/webhooks/shopify/acme", content=body, headers=headers)
    ).status_code == 401
    future = datetime.now(UTC) + timedelta(hours=1)
    headers, body = SIM.webhook("orders/create", _order(2), triggered_at=future)
    assert (
        await client.post("/webhooks/shopify/acme", content=body, headers=headers)
    ).status_code == 401
    headers, body = SIM.webhook("orders/create", _order(3))  # the same delivery, now: accepted
    assert (
        await client.post("/webhooks/shopify/acme", content=body, headers=headers)
    ).status_code == 200
    assert len(publisher.batches) == 1  # the order (and its payment): one delivery published


async def test_oversized_bodies_are_refused_declared_or_streamed(client, publisher) -> None:  # type: ignore[no-untyped-def]
    big = json.dumps({"id": 1, "pad": "x" * (MAX_BODY + 10)}).encode()
    r = await client.post("/webhooks/shopify/acme", content=big, headers=_signed(big))
    assert r.status_code == 413

    async def stream():  # type: ignore[no-untyped-def]
        for _ in range(8):
            yield b"x" * (MAX_BODY // 4)

    headers = _signed(b"")
    r = await client.post("/webhooks/shopify/acme", content=stream(), headers=headers)
    assert r.status_code == 413
    assert publisher.batches == []


@pytest.mark.parametrize("depth", [1_000, 100_000])
async def test_deeply_nested_json_is_a_400_not_a_crash(client, publisher, depth: int) -> None:  # type: ignore[no-untyped-def]
    body = b'{"a":' * depth + b"1" + b"}" * depth
    body = body[:MAX_BODY] if len(body) > MAX_BODY else body
    r = await client.post("/webhooks/shopify/acme", content=body, headers=_signed(body))
    assert r.status_code in (400, 413)
    assert publisher.batches == []


async def test_non_utf8_bytes_are_a_400(client, publisher) -> None:  # type: ignore[no-untyped-def]
    for body in (b"\xff\xfe\xfa{}", b'{"id": "\xc3\x28"}', "{}".encode("utf-16")):
        r = await client.post("/webhooks/shopify/acme", content=body, headers=_signed(body))
        assert r.status_code == 400, (body, r.text)
    assert publisher.batches == []


SQLISH = ["'; DROP TABLE stock; --", "TEE' OR '1'='1", 'x"); DELETE FROM orders; --']


async def test_sql_looking_skus_never_reach_anything_unsigned_and_stay_data_when_signed(
    client, publisher
) -> None:  # type: ignore[no-untyped-def]
    """Unsigned, forged or in the URL: 4xx and nothing published. Signed by the shop, an SKU is
    an opaque string: it is published verbatim (the store binds it as a parameter)."""
    for n, sku in enumerate(SQLISH):
        body = json.dumps(_order(100 + n, sku)).encode()
        r = await client.post(
            "/webhooks/shopify/acme", content=body, headers=_signed(body, secret="forged")
        )
        assert r.status_code == 401
        r = await client.post(
            f"/webhooks/shopify/{sku}", content=body, headers=_signed(body, secret="forged")
        )
        assert 400 <= r.status_code < 500
    assert publisher.batches == []
    body = json.dumps(_order(200, SQLISH[0])).encode()
    r = await client.post("/webhooks/shopify/acme", content=body, headers=_signed(body))
    assert r.status_code in (200, 400), r.text
    if r.status_code == 200:
        [env, *_] = publisher.published
        assert [line.sku for line in env.data.lines] == [SQLISH[0]]  # type: ignore[union-attr]


async def test_one_tenants_secret_never_posts_for_another_account(client, publisher) -> None:  # type: ignore[no-untyped-def]
    body = json.dumps(_order(300)).encode()
    r = await client.post("/webhooks/shopify/other", content=body, headers=_signed(body))
    assert r.status_code == 401
    r = await client.post(
        "/webhooks/woocommerce/corner",
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-WC-Webhook-Signature": sign(ACME_SECRET, body),
        },
    )
    assert r.status_code == 401
    r = await client.post("/webhooks/woocommerce/acme", content=body, headers=_signed(body))
    assert r.status_code == 404  # the account exists, but for another connector
    assert publisher.batches == []


async def test_header_injection_is_refused_by_the_client_or_answered_4xx(publisher) -> None:  # type: ignore[no-untyped-def]
    """CR/LF in a header value: httpx refuses to send it. Sent raw over a socket to the served
    gateway, a lone CR or a NUL is refused by the HTTP parser (400 or connection closed) before
    the app sees it; a bare LF ends the header line (RFC 9112 lets a recipient accept it), so the
    app sees two ordinary headers and a topic it does not know: answered below 500, nothing
    published. No header value with CR/LF ever reaches the app."""
    app = create_gateway(_config(), publisher, max_body=MAX_BODY, publish_timeout=0.5)
    port = free_port()
    body = json.dumps(_order(400)).encode()
    headers = _signed(body)
    async with served(app, port) as url:
        for evil in ("orders/create\r\nX-Shopify-Hmac-Sha256: forged", "orders/create\nX-A: 1"):
            async with httpx.AsyncClient(base_url=url) as c:
                with pytest.raises((httpx.LocalProtocolError, ValueError)):
                    await c.post(
                        "/webhooks/shopify/acme",
                        content=body,
                        headers={**headers, "X-Shopify-Topic": evil},
                    )
        for evil in (b"orders/create\rX-A: 1", b"orders/create\x00"):
            raw = b"".join(
                [
                    b"POST /webhooks/shopify/acme HTTP/1.1\r\nHost: 127.0.0.1\r\n",
                    *(
                        f"{k}: {v}\r\n".encode()
                        for k, v in headers.items()
                        if k != "X-Shopify-Topic"
                    ),
                    b"X-Shopify-Topic: " + evil + b"\r\n",
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode(),
                    body,
                ]
            )
            status = await asyncio.to_thread(_raw_status, port, raw)
            assert status is None or 400 <= status < 500, (evil, status)
        raw = raw.replace(b"orders/create\x00", b"orders/\x7fcreate\nX-A: 1")
        status = await asyncio.to_thread(_raw_status, port, raw)
        assert status is None or status < 500
    assert publisher.batches == []


def _raw_status(port: int, raw: bytes) -> int | None:
    """The status line's code, or None if the server closed the connection without one."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(raw)
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    if not data.startswith(b"HTTP/1."):
        return None
    return int(data.split(b" ", 2)[1])
