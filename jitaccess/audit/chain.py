"""The hash chain: one canonical serialisation, used both when writing and when verifying."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from jitaccess.canonical import canonical_sha256, canonical_time

GENESIS_HASH = "0" * 64


def event_hash(
    *,
    seq: int,
    at: datetime | str,
    actor_id: int | None,
    actor_name: str,
    action: str,
    target_type: str,
    target_id: str,
    grant_id: int | None,
    outcome: str,
    ip: str | None,
    correlation_id: str,
    data: dict[str, Any],
    prev_hash: str,
) -> str:
    body = {
        "seq": seq,
        # A str is already canonical (verification has PostgreSQL format it, which is faster).
        "at": at if isinstance(at, str) else canonical_time(at),
        "actor_id": actor_id,
        "actor_name": actor_name,
        "action": action,
        "target_type": target_type,
        "target_id": target_id,
        "grant_id": grant_id,
        "outcome": outcome,
        "ip": ip,
        "correlation_id": correlation_id,
        "data": data,
        "prev_hash": prev_hash,
    }
    return canonical_sha256(body)


def hash_of_row(row: Any) -> str:
    """Recompute the hash of a stored ``AuditEvent``."""
    return event_hash(
        seq=row.seq,
        at=row.at,
        actor_id=row.actor_id,
        actor_name=row.actor_name,
        action=row.action,
        target_type=row.target_type,
        target_id=row.target_id,
        grant_id=row.grant_id,
        outcome=row.outcome,
        ip=row.ip,
        correlation_id=row.correlation_id,
        data=row.data,
        prev_hash=row.prev_hash,
    )
