"""Which audit actions are workflow events a webhook can subscribe to, and what a receiver gets.

The payload is built from the audit event alone: the trail never holds a secret, a credential or
a token (audit_record refuses such keys), so neither does a webhook body.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # audit_record imports this module: keep it free of model imports
    from jitaccess.audit.models import AuditEvent

# State changes of the approval workflow, in the order a request lives through them. Refusals
# (decision.refused.*, ...) are not here: they change nothing a receiver could act on.
WEBHOOK_EVENTS: tuple[str, ...] = (
    "request.submitted",
    "request.stage_opened",
    "decision.approved",
    "decision.denied",
    "request.approved",
    "request.denied",
    "request.withdrawn",
    "request.expired",
    "grant.issued",
    "credential.minted",
    "grant.revoked",
    "grant.expired",
)
WEBHOOK_EVENT_SET = frozenset(WEBHOOK_EVENTS)


def event_payload(event: AuditEvent) -> dict[str, Any]:
    """The JSON a receiver gets for one audit event (docs/WEBHOOKS.md, "Payload")."""
    return {
        "event": event.action,
        "audit_seq": event.seq,
        "occurred_at": event.at.isoformat(),
        "actor": event.actor_name or None,
        "target": {"type": event.target_type, "id": event.target_id},
        "grant_id": event.grant_id,
        "outcome": event.outcome,
        "data": event.data,
    }
