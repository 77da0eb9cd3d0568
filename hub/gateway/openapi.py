"""The OpenAPI 3.1 document of the webhook endpoint (for clients and API fuzzers)."""

from __future__ import annotations

from typing import Any


def openapi_document(connectors: list[str]) -> dict[str, Any]:
    error = {
        "type": "object",
        "properties": {"error": {"type": "string"}, "reason": {"type": "string"}},
        "required": ["error"],
    }

    def reply(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
        return {
            "description": description,
            "content": {"application/json": {"schema": schema or error}},
        }

    header_names = [
        ("X-Shopify-Hmac-Sha256", "Shopify: base64 HMAC-SHA256 of the raw body"),
        ("X-Shopify-Topic", "Shopify: webhook topic, e.g. orders/create"),
        ("X-Shopify-Event-Id", "Shopify: the event (shared by redeliveries)"),
        ("X-Shopify-Webhook-Id", "Shopify: this delivery"),
        ("X-Shopify-Triggered-At", "Shopify: when the event was triggered"),
        ("X-WC-Webhook-Signature", "WooCommerce: base64 HMAC-SHA256 of the raw body"),
        ("X-WC-Webhook-Topic", "WooCommerce: webhook topic, e.g. order.created"),
    ]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Stock hub webhook gateway",
            "version": "1",
            "description": "Platform webhooks. 200 once durably published (or already seen).",
        },
        "paths": {
            "/webhooks/{connector}/{account}": {
                "post": {
                    "operationId": "receiveWebhook",
                    "summary": "Receive a signed platform webhook",
                    "parameters": [
                        {
                            "name": "connector",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "enum": connectors},
                        },
                        {
                            "name": "account",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]+$"},
                        },
                        *[
                            {
                                "name": name,
                                "in": "header",
                                "required": False,
                                "description": text,
                                "schema": {"type": "string"},
                            }
                            for name, text in header_names
                        ],
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    "responses": {
                        "200": reply(
                            "Published to the broker (acks=all)",
                            {
                                "type": "object",
                                "properties": {
                                    "accepted": {"type": "integer"},
                                    "ids": {"type": "array", "items": {"type": "string"}},
                                },
                                "required": ["accepted", "ids"],
                            },
                        ),
                        "400": reply("Malformed payload; `reason` says why"),
                        "401": reply("Missing or invalid signature"),
                        "404": reply("Unknown account, or the account uses another connector"),
                        "413": reply("Body too large"),
                        "415": reply("Not application/json"),
                        "503": reply("Broker unavailable; retry after `Retry-After` seconds"),
                    },
                }
            }
        },
    }
