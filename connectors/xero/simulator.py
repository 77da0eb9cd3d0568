"""A Xero Accounting API simulator for manual journals, as a Starlette app.

It enforces what the real API enforces for `POST /api.xro/2.0/ManualJournals`:

- OAuth2: `Authorization: Bearer <token>` (else 401 AuthenticationUnsuccessful; an access token
  past its 30 minutes, 401 TokenExpired) and a known `Xero-tenant-id` (else 403); `POST
  /connect/token` refreshes: the app's client credentials (Basic), a refresh token Xero knows
  (else 400 invalid_grant), a new access token and a new refresh token, the old one spent;
- a body that is JSON (else 400 PostDataInvalidException), either `{"ManualJournals": [...]}` or
  one journal object;
- per journal: a Narration, a valid Date (YYYY-MM-DD), Status DRAFT or POSTED, at least two
  JournalLines, each with a non-zero LineAmount (at most 2 decimals) and an AccountCode that exists
  in the organisation's chart, and lines that sum to zero — "The total debits (100.00) must equal
  total credits (-90.00)". Failures answer 400 with a ValidationException whose
  `Elements[].ValidationErrors[].Message` name every problem, the way Xero does;
- `Idempotency-Key`: a repeated key answers the first answer again and books nothing;
- injectable 5xx and 429 (`Retry-After`) through `faults` (`connectors.http.Faults`).
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from connectors.http import Faults
from connectors.xero import mapping
from connectors.xero.client import JOURNALS_PATH

CENT = Decimal("0.01")


def _xero_date(day: date) -> str:
    stamp = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)
    return f"/Date({stamp}+0000)/"


def _now_xero() -> str:
    return f"/Date({int(datetime.now(UTC).timestamp() * 1000)})/"


class XeroSimulator:
    def __init__(
        self,
        account_codes: Iterable[str],
        *,
        token: str = "sim-token",
        tenant_id: str = "00000000-0000-0000-0000-00000000a1b2",
        client_id: str = "sim-client",
        client_secret: str = "sim-secret",
        refresh_token: str = "sim-refresh-0",
        access_ttl: float = 1800.0,
    ) -> None:
        self.accounts = {code: str(uuid.uuid4()) for code in account_codes}
        self.token = token  # a fixed token that never expires (tests, the demo)
        self.tenant_id = tenant_id
        self.client = (client_id, client_secret)
        self.refresh_tokens = {refresh_token}
        self.access_ttl = access_ttl
        self.access: dict[str, float] = {}  # access token → when it expires (time.time())
        self.refreshes = 0
        self.faults = Faults()
        self.journals: dict[str, dict[str, Any]] = {}
        self.idempotent: dict[str, tuple[int, bytes]] = {}
        self.app = Starlette(
            routes=[
                Route(JOURNALS_PATH, self._journals, methods=["GET", "POST", "PUT"]),
                Route("/connect/token", self._token, methods=["POST"]),
            ]
        )

    def expire_access_tokens(self) -> None:
        """Every access token issued reaches its 30 minutes."""
        self.access = dict.fromkeys(self.access, 0.0)

    async def _token(self, request: Request) -> Response:
        expected = "Basic " + base64.b64encode(":".join(self.client).encode()).decode()
        if request.headers.get("authorization") != expected:
            return self._json(401, {"error": "invalid_client"})
        form = parse_qs((await request.body()).decode())
        grant = form.get("grant_type", [""])[0]
        old = form.get("refresh_token", [""])[0]
        if grant != "refresh_token" or old not in self.refresh_tokens:
            return self._json(400, {"error": "invalid_grant"})
        self.refreshes += 1
        self.refresh_tokens.discard(old)
        new = f"sim-refresh-{self.refreshes}"
        self.refresh_tokens.add(new)
        access = f"sim-access-{self.refreshes}"
        self.access[access] = time.time() + self.access_ttl
        body = {
            "access_token": access,
            "expires_in": int(self.access_ttl),
            "token_type": "Bearer",
            "refresh_token": new,
            "scope": "accounting.transactions offline_access",
        }
        return self._json(200, body)

    def _json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
        return Response(
            mapping.dumps(body),
            status_code=status,
            media_type="application/json",
            headers=headers,
        )

    async def _journals(self, request: Request) -> Response:
        injected = await self.faults.apply(request.method, request.url.path)
        if injected is not None:
            status, headers = injected
            if status == 429:
                headers = {**headers, "X-Rate-Limit-Problem": "minute"}
            return self._json(status, {"Title": "Injected failure", "Status": status}, headers)
        auth = request.headers.get("authorization", "")
        bearer = auth.removeprefix("Bearer ")
        expires = self.access.get(bearer)
        if auth != f"Bearer {self.token}" and (expires is None or time.time() >= expires):
            detail = "AuthenticationUnsuccessful" if expires is None else "TokenExpired"
            return self._json(
                401, {"Type": None, "Title": "Unauthorized", "Status": 401, "Detail": detail}
            )
        if request.headers.get("xero-tenant-id") != self.tenant_id:
            return self._json(
                403,
                {
                    "Type": None,
                    "Title": "Forbidden",
                    "Status": 403,
                    "Detail": "AuthenticationUnsuccessful",
                },
            )
        if request.method == "GET":
            return self._ok(list(self.journals.values()))
        key = request.headers.get("idempotency-key")
        if key and key in self.idempotent:
            status, content = self.idempotent[key]
            return Response(content, status_code=status, media_type="application/json")
        response = self._create(await request.body())
        if key:
            self.idempotent[key] = (response.status_code, bytes(response.body))
        return response

    def _ok(self, journals: list[dict[str, Any]]) -> Response:
        return self._json(
            200,
            {
                "Id": str(uuid.uuid4()),
                "Status": "OK",
                "ProviderName": "Hub Xero simulator",
                "DateTimeUTC": _now_xero(),
                "ManualJournals": journals,
            },
        )

    def _create(self, raw: bytes) -> Response:
        try:
            body = mapping.loads(raw)
        except ValueError as exc:
            return self._json(
                400,
                {
                    "ErrorNumber": 14,
                    "Type": "PostDataInvalidException",
                    "Message": f"JSON for post data was invalid, {exc}",
                },
            )
        items = body.get("ManualJournals") if isinstance(body, dict) else None
        if items is None:
            items = [body]
        if not isinstance(items, list) or not items:
            return self._json(
                400,
                {
                    "ErrorNumber": 14,
                    "Type": "PostDataInvalidException",
                    "Message": "The request does not contain a ManualJournal",
                },
            )
        checked = [(j, self._validate(j)) for j in items]
        if any(errors for _, errors in checked):
            elements = []
            for journal, errors in checked:
                element = dict(journal) if isinstance(journal, dict) else {}
                element["ValidationErrors"] = [{"Message": m} for m in errors]
                elements.append(element)
            return self._json(
                400,
                {
                    "ErrorNumber": 10,
                    "Type": "ValidationException",
                    "Message": "A validation exception occurred",
                    "Elements": elements,
                },
            )
        created = [self._book(j) for j, _ in checked]
        return self._ok(created)

    def _validate(self, journal: Any) -> list[str]:
        if not isinstance(journal, dict):
            return ["A ManualJournal must be an object"]
        errors: list[str] = []
        if not str(journal.get("Narration") or "").strip():
            errors.append("Narration cannot be empty")
        raw_date = journal.get("Date")
        if raw_date is not None:
            try:
                date.fromisoformat(str(raw_date)[:10])
            except ValueError:
                errors.append(f"The date '{raw_date}' is not a valid date")
        if journal.get("Status", "DRAFT") not in ("DRAFT", "POSTED"):
            errors.append("Status must be DRAFT or POSTED for a new manual journal")
        lines = journal.get("JournalLines")
        if not isinstance(lines, list) or len(lines) < 2:
            errors.append(
                "The JournalLines element must contain at least two individual "
                "JournalLine sub-elements"
            )
            return errors
        debits = credits = Decimal(0)
        for line in lines:
            if not isinstance(line, dict):
                errors.append("A JournalLine must be an object")
                continue
            code = str(line.get("AccountCode") or "")
            if code not in self.accounts:
                errors.append(f"Account code '{code}' is not a valid code for this document.")
            try:
                amount = Decimal(str(line.get("LineAmount")))
            except InvalidOperation:
                errors.append("A line amount is required for each journal line")
                continue
            if not amount.is_finite() or amount == 0:
                errors.append("Journal line amounts must be non-zero")
                continue
            if amount != amount.quantize(CENT):
                errors.append("Line amounts can have at most 2 decimal places")
            if amount > 0:
                debits += amount
            else:
                credits += amount
        if debits + credits != 0:
            errors.append(
                f"The total debits ({debits.quantize(CENT)}) must equal total credits "
                f"({credits.quantize(CENT)})"
            )
        return errors

    def _book(self, journal: dict[str, Any]) -> dict[str, Any]:
        jid = str(uuid.uuid4())
        day = date.fromisoformat(str(journal.get("Date") or date.today().isoformat())[:10])
        booked = {
            "Date": _xero_date(day),
            "Status": journal.get("Status", "DRAFT"),
            "LineAmountTypes": journal.get("LineAmountTypes", "NoTax"),
            "UpdatedDateUTC": _now_xero(),
            "ManualJournalID": jid,
            "Narration": journal["Narration"],
            "JournalLines": [
                {
                    "Description": line.get("Description", ""),
                    "TaxType": "NONE",
                    "LineAmount": Decimal(str(line["LineAmount"])),
                    "AccountCode": str(line["AccountCode"]),
                    "Tracking": [],
                    "AccountID": self.accounts[str(line["AccountCode"])],
                    "IsBlank": False,
                }
                for line in journal["JournalLines"]
            ],
            "ShowOnCashBasisReports": True,
        }
        self.journals[jid] = booked
        return booked
