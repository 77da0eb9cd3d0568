"""The AsyncAPI 3.0 document of every topic and message, generated from the schemas."""

from __future__ import annotations

from typing import Any

from schemas import topics
from schemas.registry import MESSAGE_TYPES

_DESCRIPTIONS = {
    topics.ORDERS: "Order lifecycle from shop connectors; key `{account}:{order id}`.",
    topics.PAYMENTS: "Payments captured and refunded; key `{account}:{order id}`.",
    topics.STOCK_EVENTS: "Stocktakes, adjustments, receipts, transfers; key SKU.",
    topics.PURCHASING: "Supplier acknowledgements, ship notices, invoices; key PO number.",
    topics.RESERVATIONS: "The core's decisions per order; key `{account}:{order id}`.",
    topics.STOCK_LEVELS: "Available-to-sell per SKU and channel; key `{sku}@{channel}`.",
    topics.VOUCHERS: "Balanced accounting vouchers for the finance system; key voucher id.",
    topics.PURCHASE_ORDERS: "Purchase orders to suppliers; key PO number.",
    topics.DLQ: "Dead letters: original bytes and headers plus dlq_error/dlq_topic/…",
}
_INBOUND = set(topics.INBOUND)


def _headers_schema() -> dict[str, Any]:
    s = {"type": "string"}
    return {
        "type": "object",
        "required": ["ce_specversion", "ce_id", "ce_type", "ce_source", "ce_time"],
        "properties": {
            "ce_specversion": {"const": "1.0"},
            "ce_id": {**s, "description": "Stable message id; duplicates share it"},
            "ce_type": {**s, "description": "Message type with schema version"},
            "ce_source": {**s, "description": "Producer, e.g. shopify/acme"},
            "ce_time": {**s, "format": "date-time"},
            "ce_correlationid": {**s, "description": "Follows one order end to end"},
            "ce_causes": {
                **s,
                "description": "Stock levels: the correlation ids of the orders that changed "
                "the level in one core transaction (comma-separated, at most 10, newest last)",
            },
            "content-type": {"const": "application/json"},
        },
    }


def document() -> dict[str, Any]:
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    by_topic: dict[str, list[str]] = {}
    for ce_type, model in sorted(MESSAGE_TYPES.items()):
        name = model.__name__
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for dep_name, dep in schema.pop("$defs", {}).items():
            schemas[dep_name] = dep
        schemas[name] = schema
        messages[name] = {
            "name": name,
            "title": ce_type,
            "summary": (model.__doc__ or "").strip().splitlines()[0] if model.__doc__ else name,
            "contentType": "application/json",
            "headers": _headers_schema(),
            "payload": {"$ref": f"#/components/schemas/{name}"},
        }
        by_topic.setdefault(model.topic, []).append(name)
    for topic in topics.ALL:
        cid = topic.replace(".", "_").replace("-", "_")
        names = by_topic.get(topic, [])
        channels[cid] = {
            "address": topic,
            "description": _DESCRIPTIONS.get(topic, ""),
            "messages": {n: {"$ref": f"#/components/messages/{n}"} for n in names},
        }
        operations[f"{'receive' if topic in _INBOUND else 'send'}_{cid}"] = {
            "action": "receive" if topic in _INBOUND else "send",
            "channel": {"$ref": f"#/channels/{cid}"},
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Stock hub",
            "version": "1.0.0",
            "description": "Canonical messages as CloudEvents 1.0 (Kafka binding, binary mode).",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }
