"""Client settings shared by every Kafka client of the hub (security, timeouts)."""

from __future__ import annotations

import ssl
from typing import Any

from hub.config import Settings, resolve_secret
from hub.kafka.embedded import recorded_bootstrap


class NoBroker(RuntimeError):
    """No broker configured and none recorded by a running `hub serve`."""


def bootstrap(settings: Settings) -> str:
    if settings.kafka_bootstrap:
        return settings.kafka_bootstrap
    found = recorded_bootstrap(settings.broker_file)
    if found:
        return found
    raise NoBroker(
        "no Kafka broker: set HUB_KAFKA_BOOTSTRAP, or start `hub serve` (embedded broker) "
        f"with the same HUB_VAR_DIR ({settings.var_dir})"
    )


# Apache Kafka answers a waiting fetch as soon as a record arrives, so its wait only bounds an
# idle poll. The embedded broker answers when the wait runs out: its wait is added to every hop
# (measured: 119 ms p50 per hop at aiokafka's 500 ms default, 3 ms at 10 ms).
KAFKA_FETCH_WAIT_MS = 500
EMBEDDED_FETCH_WAIT_MS = 10


def fetch_max_wait_ms(settings: Settings) -> int:
    """The consumers' `fetch_max_wait_ms`: as configured, else by the kind of broker."""
    if settings.kafka_fetch_max_wait_ms is not None:
        return settings.kafka_fetch_max_wait_ms
    return KAFKA_FETCH_WAIT_MS if settings.kafka_bootstrap else EMBEDDED_FETCH_WAIT_MS


def heartbeat_interval_ms(session_timeout_ms: int) -> int:
    """A consumer's heartbeat: a third of its session timeout, at least a second."""
    return max(1000, session_timeout_ms // 3)


def client_kwargs(settings: Settings) -> dict[str, Any]:
    """aiokafka keyword arguments for TLS/SASL from the settings."""
    kw: dict[str, Any] = {"security_protocol": settings.kafka_security_protocol}
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        kw["ssl_context"] = ssl.create_default_context(cafile=settings.kafka_ssl_cafile)
    if settings.kafka_security_protocol.startswith("SASL"):
        kw["sasl_mechanism"] = settings.kafka_sasl_mechanism or "PLAIN"
        kw["sasl_plain_username"] = settings.kafka_sasl_username
        kw["sasl_plain_password"] = resolve_secret(settings.kafka_sasl_password)
    return kw


def faststream_security(settings: Settings) -> Any:
    """The same settings as FastStream security objects (None for PLAINTEXT)."""
    from faststream.security import (
        BaseSecurity,
        SASLPlaintext,
        SASLScram256,
        SASLScram512,
    )

    proto = settings.kafka_security_protocol
    if proto == "PLAINTEXT":
        return None
    ctx = ssl.create_default_context(cafile=settings.kafka_ssl_cafile) if "SSL" in proto else None
    if proto == "SSL":
        return BaseSecurity(ssl_context=ctx)
    user = settings.kafka_sasl_username or ""
    password = resolve_secret(settings.kafka_sasl_password) or ""
    mech = (settings.kafka_sasl_mechanism or "PLAIN").upper()
    cls = {
        "PLAIN": SASLPlaintext,
        "SCRAM-SHA-256": SASLScram256,
        "SCRAM-SHA-512": SASLScram512,
    }.get(mech)
    if cls is None:
        raise ValueError(f"unsupported SASL mechanism {mech}")
    return cls(username=user, password=password, ssl_context=ctx)
