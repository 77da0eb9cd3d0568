"""Ports to Kafka: what the gateway and the relay need of a publisher, and the real one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from schemas.envelope import Envelope


class BrokerUnavailable(RuntimeError):
    """The broker did not acknowledge in time: nothing may be reported as accepted."""


class Publisher(Protocol):
    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        """Publish and wait until Kafka acknowledged every message (acks=all).

        Raises BrokerUnavailable if that cannot be done within the publisher's deadline.
        """
        ...
