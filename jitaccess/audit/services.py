"""The one way to write to the audit trail."""

from __future__ import annotations

from typing import Any

from django.db import connection, transaction

from jitaccess import clock
from jitaccess.audit.chain import GENESIS_HASH, event_hash
from jitaccess.audit.context import current_context
from jitaccess.audit.models import AuditEvent, Outcome
from jitaccess.webhooks.events import WEBHOOK_EVENT_SET

# Any advisory-lock key works as long as every writer uses the same one.
_CHAIN_LOCK_KEY = 0x6A69_7461_7564  # "jitaud"

# Keys whose values would be secrets. Refusing them here keeps plaintext out of the trail even
# when a caller makes a mistake; store an HMAC or an id under another name instead.
FORBIDDEN_DATA_KEYS = frozenset(
    {"password", "secret", "token", "credential", "value", "plaintext", "key", "otp", "refresh_token"}
)


_HEAD_SQL = "SELECT seq, hash, at FROM audit_auditevent ORDER BY seq DESC LIMIT 1"


def _check_data(data: dict[str, Any]) -> None:
    for key, value in data.items():
        if key.lower() in FORBIDDEN_DATA_KEYS:
            raise ValueError(f"audit data may not carry {key!r}")
        if isinstance(value, dict):
            _check_data(value)


def audit_record(
    action: str,
    *,
    actor: Any = None,
    target_type: str = "",
    target_id: str | int = "",
    grant_id: int | None = None,
    outcome: str = Outcome.SUCCESS,
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event to the chain inside the caller's transaction.

    Fail closed: any error propagates and rolls back the caller's state change with it.
    Writers are serialised (advisory lock on PostgreSQL, IMMEDIATE transactions on SQLite), so
    the head read below is always the true head and the chain never forks.
    """
    data = dict(data or {})
    _check_data(data)
    ctx = current_context()
    with transaction.atomic(savepoint=False):
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_CHAIN_LOCK_KEY])
                # A statement of its own, after the lock: one that also took the lock would read
                # the head in a snapshot from before the lock was granted, missing the previous
                # writer's event. Plain SQL: the ORM would spend more CPU than the read, in the lock.
                cursor.execute(_HEAD_SQL)
                head = cursor.fetchone()
        else:
            head = AuditEvent.objects.order_by("-seq").values_list("seq", "hash", "at").first()
        seq, prev_hash = (head[0] + 1, head[1]) if head else (1, GENESIS_HASH)
        # Time never runs backwards along the chain (a clock stepped back stamps the previous
        # event's time instead), so a time window is also a seq range: the filters rely on it.
        at = max(clock.now(), head[2]) if head else clock.now()
        actor_id = getattr(actor, "pk", None)
        fields = {
            "seq": seq,
            "at": at,
            "actor_id": actor_id,
            "actor_name": getattr(actor, "username", "") if actor_id else "",
            "action": action,
            "target_type": target_type,
            "target_id": str(target_id),
            "grant_id": grant_id,
            "outcome": str(outcome),
            "ip": ctx.ip,
            "correlation_id": ctx.correlation_id,
            "data": data,
            "prev_hash": prev_hash,
        }
        event = AuditEvent(**fields, hash=event_hash(**fields))
        event.save()
        if action in WEBHOOK_EVENT_SET:
            # In the same transaction: the deliveries exist exactly when the event does.
            from jitaccess.webhooks.dispatch import deliveries_create

            deliveries_create(event)
    return event
