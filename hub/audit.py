"""Audit log of operator actions: who, what, when, before and after."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from hub.store.models import AuditEntry


async def record(
    session: AsyncSession,
    actor: str,
    action: str,
    target: str,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    """Add an audit row inside the caller's transaction."""
    session.add(
        AuditEntry(actor=actor, action=action, target=target[:200], before=before, after=after)
    )
