"""A generic shop connector: signed JSON webhooks mapped by JMESPath, REST stock push."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import httpx

from connectors.base import Account, ShopClient, header, parse_json
from connectors.generic import mapping, webhooks
from connectors.generic.config import settings
from schemas.envelope import Envelope


class GenericConnector:
    name = "generic"

    def verify(
        self, body: bytes, headers: Mapping[str, str], account: Account, now: datetime
    ) -> None:
        webhooks.verify(body, headers, account, now)

    def parse(
        self, body: bytes, headers: Mapping[str, str], account: Account, now: datetime
    ) -> list[Envelope]:
        cfg = settings(account)
        event = header(headers, cfg.event_header) if cfg.event_header else None
        return mapping.map_webhook(parse_json(body), account, event=event, now=now)

    def client(
        self, account: Account, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> ShopClient:
        from connectors.generic.client import GenericClient

        return GenericClient(account, transport=transport)


CONNECTOR = GenericConnector()
