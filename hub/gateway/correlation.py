"""The correlation id of a webhook: derived from the platform's order, so it follows that order.

The id is `uuid5(order key)` of the first order the webhook's messages concern (for a webhook
about no order, the id of its first canonical message). Platform ids map deterministically to it,
so a redelivered webhook, the order's later webhooks (payment, fulfilment, cancellation) and a
resync of the same order all carry the same id, and `hub.reservations.v1`, `hub.vouchers.v1` and
the stock pushes they cause carry it on.

An incoming `X-Correlation-ID` or W3C `traceparent` does not replace it: an ingress or proxy adds
a new one to every delivery, which would split one order over many ids. They are logged beside it
(`request_id`, `trace_id`) to join the caller's logs to ours. A request refused before its
messages are known (404, 401, 413, …) gets a random id, so the response still names its log line.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence

from schemas.envelope import Envelope, message_id

HEADER = "X-Correlation-ID"
SOURCE = "hub/correlation"

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/@+=-]{1,128}")
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")


def for_order(order_key: str) -> str:
    """The correlation id of an order (`{account}:{platform order id}`)."""
    return message_id(SOURCE, order_key)


def derive(envelopes: Sequence[Envelope]) -> str | None:
    """The correlation id of a webhook's messages, or None for a webhook with none."""
    for env in envelopes:
        key = getattr(env.data, "order_key", None)
        if isinstance(key, str) and key:
            return for_order(key)
    return envelopes[0].id if envelopes else None


def provisional() -> str:
    """The id of a request whose messages are not known (yet)."""
    return str(uuid.uuid4())


def upstream_ids(headers: Mapping[str, str]) -> dict[str, str]:
    """The caller's own ids, when well formed: `request_id` (X-Correlation-ID) and `trace_id`
    (the trace id of a W3C traceparent). Malformed values are ignored, never echoed."""
    found: dict[str, str] = {}
    request_id = headers.get(HEADER.lower(), headers.get(HEADER, "")).strip()
    if _REQUEST_ID.fullmatch(request_id):
        found["request_id"] = request_id
    parent = headers.get("traceparent", "").strip().lower()
    match = _TRACEPARENT.fullmatch(parent)
    if match and match.group(1) != "0" * 32 and not parent.startswith("ff"):
        found["trace_id"] = match.group(1)
    return found
