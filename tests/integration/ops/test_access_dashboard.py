"""The dashboard (no token) and what a viewer reads carry no secrets and no customer data: a
Shopify order with a customer's name, e-mail, phone and address goes through the gateway and the
core, a dead letter holds that order's raw bytes, and none of it, nor any token or secret,
appears in what is served."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

import httpx

from connectors.base import sign
from hub.app import Runtime
from hub.config import AccountConfig, ChannelRule, HubConfig, Settings
from hub.ops.state import lag_loop, ops_state
from hub.web.app import create_app
from tests.builders import counted
from tests.integration.ops.test_access_http import add_dead_letter

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "shopify" / "orders_create.json"
SECRETS = {
    "admin token": "adm-0c5e1f9b3a77d2",
    "viewer token": "view-6d2a8e0f4b11c9",
    "webhook secret": "whsec-3f9a0b7c5e21",
    "api token": "shpat-8c1d4e7a2f60b5",
}
CUSTOMER = {
    "email": "ada.quintessa@example.org",
    "first name": "Adaquinta",
    "last name": "Lovelace-Oyelaran",
    "phone": "+44 20 7946 0958",
    "street": "12 Analytical Engine Row",
}


def _order() -> bytes:
    order = json.loads(FIXTURE.read_text())
    order["email"] = CUSTOMER["email"]
    order["phone"] = CUSTOMER["phone"]
    person = {
        "first_name": CUSTOMER["first name"],
        "last_name": CUSTOMER["last name"],
        "email": CUSTOMER["email"],
        "phone": CUSTOMER["phone"],
    }
    address = {**person, "address1": CUSTOMER["street"], "city": "London", "country": "GB"}
    order.update(customer=person, shipping_address=address, billing_address=address)
    return json.dumps(order).encode()


async def _until(predicate, limit: float = 30.0) -> None:
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not reached in time")


async def test_dashboard_and_viewer_reads_show_no_secrets_or_customer_data(
    kafka, tmp_path, monkeypatch
):
    monkeypatch.setenv("ACME_API_TOKEN", SECRETS["api token"])
    s = Settings(
        kafka_bootstrap=kafka.bootstrap,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}",
        var_dir=tmp_path / "var",
        core_group=f"core-{uuid.uuid4().hex[:6]}",
        consumer_session_timeout_ms=6000,
        admin_token=SECRETS["admin token"],
        viewer_token=SECRETS["viewer token"],
    )
    s.__dict__["hub"] = HubConfig(
        channels={"online": ChannelRule()},
        accounts={
            "acme": AccountConfig(
                connector="shopify",
                webhook_secret=SECRETS["webhook secret"],
                api_url="http://127.0.0.1:9",
                api_token="env:ACME_API_TOKEN",
            )
        },
    )
    rt = Runtime(s)
    await rt.start({"gateway", "core", "relay"})
    loop = asyncio.create_task(lag_loop(rt, interval=0.2))
    try:
        assert rt.publisher is not None and rt.sessions is not None
        await rt.publisher.publish([counted("TEE-RED-M", 10), counted("MUG-BLUE", 10)])
        await _until(lambda: rt.totals.applied >= 2)  # stocked before the order comes in
        app = create_app(rt)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
            body = _order()
            hook = await client.post(
                "/webhooks/shopify/acme",
                content=body,
                headers={
                    "Content-Type": "application/json",
                    "X-Shopify-Hmac-Sha256": sign(SECRETS["webhook secret"], body),
                    "X-Shopify-Topic": "orders/create",
                    "X-Shopify-Event-Id": str(uuid.uuid4()),
                    "X-Shopify-Webhook-Id": str(uuid.uuid4()),
                },
            )
            assert hook.status_code == 200, hook.text
            await _until(lambda: rt.totals.accepted >= 1)
            await add_dead_letter(
                rt.sessions,
                99,
                payload=body,
                error=f"value error, input_value='{CUSTOMER['email']}'",
            )
            await _until(lambda: len(ops_state(rt).history) >= 2)

            page = await client.get("/dashboard")
            data = await client.get("/dashboard/data")
            viewer = {"Authorization": f"Bearer {SECRETS['viewer token']}"}
            overview = await client.get("/api/overview", headers=viewer)
            lag = await client.get("/api/lag", headers=viewer)
    finally:
        rt.stop_event.set()
        await loop
        await rt.stop()

    for r in (page, data, overview, lag):
        assert r.status_code == 200, r.text
    payload = data.json()
    # The figures reflect what just happened, so the search below searched something real.
    assert payload["totals"]["accepted"] >= 1 and payload["dlq"] == 1
    assert overview.json()["dlq"] == 1
    served = {
        "/dashboard": page.text,
        "/dashboard/data": data.text,
        "/api/overview": overview.text,
        "/api/lag": lag.text,
    }
    for where, text in served.items():
        for what, value in {**SECRETS, **CUSTOMER}.items():
            assert value.lower() not in text.lower(), f"{what} served by {where}"
        assert str(tmp_path) not in text, f"a file path served by {where}"
