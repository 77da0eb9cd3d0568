"""Vouchers reach Xero as manual journals: the simulator refuses what Xero refuses, the client
retries what is transient and gives up at once, permanently, on what is invalid."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.errors import ConnectorError
from connectors.http import RetryPolicy
from connectors.xero import mapping
from connectors.xero.client import JOURNALS_PATH, XeroClient, validation_messages
from connectors.xero.simulator import XeroSimulator
from connectors.xero.subscriber import from_account
from hub.config import AccountConfig
from hub.finance import rules
from hub.finance.chart import CN_SMALL_BUSINESS
from schemas.finance import VoucherIssued

AT = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
D = Decimal
FAST = RetryPolicy(attempts=4, initial_wait=0.001, max_wait=0.01, max_retry_after=0.05)


def sale() -> VoucherIssued:
    v = rules.sale_fulfilled(
        CN_SMALL_BUSINESS,
        order_key="acme:1",
        fulfilment_id="F1",
        at=AT,
        currency="CNY",
        lines=[rules.SaleLine("TEE", "main", 2, D("100"), D("13"))],
        stock={("TEE", "main"): (5, D("33.333333"))},
    )
    assert v is not None
    return v


@pytest.fixture
def sim() -> XeroSimulator:
    return XeroSimulator([a.code for a in CN_SMALL_BUSINESS.accounts.values()])


@pytest.fixture
async def client(sim: XeroSimulator) -> AsyncIterator[XeroClient]:
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=sim.app), base_url="https://xero")
    c = XeroClient(tenant_id=sim.tenant_id, token=sim.token, http=http, policy=FAST, limiter=None)
    c.api.limiter = None
    yield c
    await c.aclose()


async def raw_post(sim: XeroSimulator, body: Any) -> httpx.Response:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=sim.app), base_url="https://xero"
    ) as http:
        return await http.post(
            JOURNALS_PATH,
            content=body if isinstance(body, bytes) else mapping.dumps(body).encode(),
            headers={"Authorization": f"Bearer {sim.token}", "Xero-tenant-id": sim.tenant_id},
        )


def test_mapping_signs_debits_positive_and_credits_negative() -> None:
    v = sale()
    journal = mapping.manual_journal(v, {"1122": "610"})
    amounts = [line["LineAmount"] for line in journal["JournalLines"]]
    assert sum(amounts) == 0
    assert journal["Status"] == "POSTED" and journal["Date"] == "2026-11-22"
    assert {"LineAmount": D("113.00"), "AccountCode": "610"}.items() <= journal["JournalLines"][
        -1
    ].items()
    assert '"LineAmount":-100.00' in mapping.dumps(journal)


async def test_a_voucher_is_booked_as_a_posted_journal(
    client: XeroClient, sim: XeroSimulator
) -> None:
    jid = await client.post_voucher(sale())
    booked = sim.journals[jid]
    assert booked["Status"] == "POSTED"
    assert sum(line["LineAmount"] for line in booked["JournalLines"]) == 0


async def test_a_repeated_voucher_books_nothing_twice(
    client: XeroClient, sim: XeroSimulator
) -> None:
    first = await client.post_voucher(sale())
    second = await client.post_voucher(sale())
    assert first == second and len(sim.journals) == 1


async def test_transient_failures_are_retried(client: XeroClient, sim: XeroSimulator) -> None:
    sim.faults.fail_next(2, status=503)
    sim.faults.throttle_next(1, retry_after=0.01)
    jid = await client.post_voucher(sale())
    assert jid in sim.journals and len(sim.faults.calls) == 4


async def test_retries_run_out_with_a_retryable_error(
    client: XeroClient, sim: XeroSimulator
) -> None:
    sim.faults.fail_next(10, status=500)
    with pytest.raises(ConnectorError) as err:
        await client.post_voucher(sale())
    assert err.value.retryable is True and not sim.journals


async def test_an_unbalanced_journal_is_refused_permanently_with_xeros_message(
    sim: XeroSimulator, client: XeroClient
) -> None:
    body = mapping.request_body(sale())
    body["ManualJournals"][0]["JournalLines"][0]["LineAmount"] -= D("1")
    response = await raw_post(sim, body)
    assert response.status_code == 400
    doc = response.json()
    assert (doc["ErrorNumber"], doc["Type"]) == (10, "ValidationException")
    assert validation_messages(doc) == [
        "The total debits (179.67) must equal total credits (-180.67)"
    ]
    # through the client: no retry, a permanent error that carries the message
    forged = sale().model_copy(update={"voucher_id": "forged"})
    object.__setattr__(forged.lines[0], "credit", D("201.00"))
    with pytest.raises(ConnectorError) as err:
        await client.post_voucher(forged)
    assert err.value.retryable is False and err.value.status == 400
    assert "must equal total credits" in err.value.message
    assert len(sim.faults.calls) == 2 and not sim.journals


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda j: j.update(JournalLines=j["JournalLines"][:1]), "at least two individual"),
        (lambda j: j["JournalLines"][0].update(AccountCode="999"), "Account code '999'"),
        (lambda j: j.update(Narration=""), "Narration cannot be empty"),
        (lambda j: j.update(Date="2026-13-01"), "is not a valid date"),
        (lambda j: j["JournalLines"][0].update(LineAmount="x"), "line amount is required"),
    ],
)
async def test_malformed_journals_are_refused_like_xero_does(
    sim: XeroSimulator, change: Any, message: str
) -> None:
    body = mapping.request_body(sale())
    change(body["ManualJournals"][0])
    response = await raw_post(sim, body)
    assert response.status_code == 400
    assert any(message in m for m in validation_messages(response.json()))
    assert not sim.journals


async def test_invalid_json_and_bad_credentials(sim: XeroSimulator) -> None:
    response = await raw_post(sim, b"{not json")
    assert response.status_code == 400
    assert response.json()["Type"] == "PostDataInvalidException"
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=sim.app), base_url="https://xero")
    bad = XeroClient(tenant_id=sim.tenant_id, token="wrong", http=http, policy=FAST, limiter=None)
    with pytest.raises(ConnectorError) as err:
        await bad.post_voucher(sale())
    # Nothing is wrong with the journal: it waits for a valid token, never dead-lettered.
    assert err.value.retryable is True and err.value.status == 401
    await bad.aclose()


async def test_account_config_builds_a_sink_and_refusals_are_permanent(
    sim: XeroSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XERO_TOKEN", sim.token)
    sim.accounts["200"] = "5040915e-8ce7-4177-8d08-fde416232f18"  # Xero's "Sales" in the org
    account = AccountConfig(
        connector="xero",
        api_url="https://xero",
        api_token="env:XERO_TOKEN",
        tenant_id=sim.tenant_id,
        account_codes={"6001": "200"},
    )
    sink = from_account(account, transport=httpx.ASGITransport(app=sim.app))
    sink.client.api.limiter = None
    assert await sink.deliver(sale()) is True
    (booked,) = sim.journals.values()
    assert "200" in {line["AccountCode"] for line in booked["JournalLines"]}
    await sink.aclose()
    with pytest.raises(ConnectorError) as err:
        from_account(AccountConfig(connector="xero"))
    assert err.value.retryable is False


async def test_access_tokens_are_refreshed_as_they_expire_and_the_newest_kept(
    sim: XeroSimulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Access tokens last 30 minutes and Xero rotates the refresh token on each use: the sink
    refreshes when Xero answers TokenExpired, keeps the newest refresh token, and a sink made
    again (a restart) goes on with it, the config's first one spent."""
    for name, value in (
        ("XERO_CLIENT_ID", "sim-client"),
        ("XERO_CLIENT_SECRET", "sim-secret"),
        ("XERO_REFRESH_TOKEN", "sim-refresh-0"),
    ):
        monkeypatch.setenv(name, value)
    account = AccountConfig(
        connector="xero",
        api_url="https://xero",
        client_id="env:XERO_CLIENT_ID",
        client_secret="env:XERO_CLIENT_SECRET",
        refresh_token="env:XERO_REFRESH_TOKEN",
        token_url="https://xero/connect/token",
        tenant_id=sim.tenant_id,
    )
    transport = httpx.ASGITransport(app=sim.app)
    sink = from_account(account, transport=transport, var_dir=tmp_path, name="books")
    sink.client.api.limiter = None
    assert await sink.deliver(sale()) is True
    sim.expire_access_tokens()
    second = sale().model_copy(update={"voucher_id": "v-2"})
    with pytest.raises(ConnectorError) as err:  # expired: refused, and the next try refreshes
        await sink.deliver(second)
    assert err.value.retryable is True and "TokenExpired" in err.value.message
    assert await sink.deliver(second) is True
    await sink.aclose()
    assert (sim.refreshes, len(sim.journals)) == (2, 2)
    assert "sim-refresh-2" in (tmp_path / "xero" / "books.json").read_text()

    again = from_account(account, transport=transport, var_dir=tmp_path, name="books")
    again.client.api.limiter = None
    assert await again.deliver(sale().model_copy(update={"voucher_id": "v-3"})) is True
    await again.aclose()
    assert sim.refreshes == 3


async def test_a_refresh_token_xero_refuses_keeps_the_vouchers_waiting(
    sim: XeroSimulator, tmp_path: Path
) -> None:
    """A revoked refresh token needs a person to connect the app again: until then delivery is
    retryable, so the vouchers wait instead of being dead-lettered."""
    account = AccountConfig(
        connector="xero",
        api_url="https://xero",
        client_id="sim-client",
        client_secret="sim-secret",
        refresh_token="revoked",
        token_url="https://xero/connect/token",
        tenant_id=sim.tenant_id,
    )
    sink = from_account(account, transport=httpx.ASGITransport(app=sim.app), var_dir=tmp_path)
    with pytest.raises(ConnectorError) as err:
        await sink.deliver(sale())
    assert err.value.retryable is True and "invalid_grant" in err.value.message
    await sink.aclose()
    assert sim.journals == {}


async def test_a_new_refresh_token_in_the_config_wins_and_two_processes_share_the_chain(
    sim: XeroSimulator, tmp_path: Path
) -> None:
    """Two sinks of one account (the worker and `hub books deliver`) refresh in turn, each from
    the newest stored token. After the chain is lost (revoked), the operator connects the app
    again and configures the new first token: it is used, not the stored one."""

    def account(refresh: str) -> AccountConfig:
        return AccountConfig(
            connector="xero",
            api_url="https://xero",
            client_id="sim-client",
            client_secret="sim-secret",
            refresh_token=refresh,
            token_url="https://xero/connect/token",
            tenant_id=sim.tenant_id,
        )

    transport = httpx.ASGITransport(app=sim.app)
    worker = from_account(account("sim-refresh-0"), transport=transport, var_dir=tmp_path)
    deliver = from_account(account("sim-refresh-0"), transport=transport, var_dir=tmp_path)
    for sink in (worker, deliver):
        sink.client.api.limiter = None
    assert await worker.deliver(sale()) is True  # refresh 0 → 1
    assert await deliver.deliver(sale().model_copy(update={"voucher_id": "v-d"})) is True  # 1 → 2
    sim.expire_access_tokens()
    with pytest.raises(ConnectorError):
        await worker.deliver(sale().model_copy(update={"voucher_id": "v-w"}))
    assert await worker.deliver(sale().model_copy(update={"voucher_id": "v-w"})) is True  # 2 → 3
    assert sim.refreshes == 3
    await worker.aclose()
    await deliver.aclose()

    sim.refresh_tokens = {"reconnected-0"}  # the chain was revoked; the app connected again
    again = from_account(account("reconnected-0"), transport=transport, var_dir=tmp_path)
    again.client.api.limiter = None
    assert await again.deliver(sale().model_copy(update={"voucher_id": "v-r"})) is True
    await again.aclose()


async def test_a_token_store_written_before_chains_were_named_is_trusted(
    sim: XeroSimulator, tmp_path: Path
) -> None:
    """A store holding only the rotated refresh token (as written before it named the token
    that started its chain) is used: the configured first token was spent long ago."""
    sim.refresh_tokens = {"rotated-7"}
    (tmp_path / "xero").mkdir()
    (tmp_path / "xero" / "xero.json").write_text('{"refresh_token": "rotated-7"}')
    account = AccountConfig(
        connector="xero",
        api_url="https://xero",
        client_id="sim-client",
        client_secret="sim-secret",
        refresh_token="spent-0",
        token_url="https://xero/connect/token",
        tenant_id=sim.tenant_id,
    )
    sink = from_account(account, transport=httpx.ASGITransport(app=sim.app), var_dir=tmp_path)
    sink.client.api.limiter = None
    assert await sink.deliver(sale()) is True
    await sink.aclose()
