"""The webhook gateway: signed platform webhooks in, canonical messages durably on Kafka out."""

from hub.gateway.app import create_gateway

__all__ = ["create_gateway"]
