"""A grant's evidence pack: how access was asked for, approved, given, used and ended, with every
audit event of it and the proof that those events sit unchanged in the signed chain."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction

from approvals import workflow
from approvals.models import AccessRequest, Decision, Grant
from jitaccess import clock
from jitaccess.audit.models import AuditEvent
from jitaccess.audit.selectors import events_of_request
from jitaccess.audit.services import audit_record
from jitaccess.audit.verification import chain_proof


@dataclass(frozen=True)
class SignedDecision:
    decision: Decision
    # The digest this approver signed is the digest of the request's stored content today.
    digest_matches: bool


@dataclass(frozen=True)
class EvidencePack:
    generated_at: datetime
    request: AccessRequest
    # The stored request content still hashes to the digest it was submitted with.
    request_digest_valid: bool
    decisions: list[SignedDecision]
    grant: Grant
    events: list[AuditEvent]
    chain_proof: dict[str, Any]


def grant_evidence(grant_id: int) -> EvidencePack:
    """Assemble the pack of one grant (read-only; see ``grant_evidence_export``)."""
    grant = Grant.objects.select_related(
        "user", "security_group", "entitlement", "ended_by", "credential", "request__requester", "request__entitlement"
    ).get(pk=grant_id)
    request = grant.request
    content_digest = workflow.request_digest(request)
    decisions = [
        SignedDecision(decision, digest_matches=decision.digest == content_digest)
        for decision in request.decisions.select_related("approver").order_by("stage_order", "decided_at", "id")
    ]
    events = list(events_of_request(request.pk, grant_id=grant.pk))
    return EvidencePack(
        generated_at=clock.now(),
        request=request,
        request_digest_valid=content_digest == request.digest,
        decisions=decisions,
        grant=grant,
        events=events,
        chain_proof=chain_proof(events),
    )


def grant_evidence_export(grant: Grant, *, acting_user: Any) -> EvidencePack:
    """Assemble the pack, then record that it leaves the system, committed before it is returned
    (no record, no pack). The record is not among the pack's own events: they are all older, so
    a checkpoint signed before the export can vouch for every one of them."""
    pack = grant_evidence(grant.pk)
    with transaction.atomic():
        audit_record(
            "audit.evidence_exported",
            actor=acting_user,
            target_type="grant",
            target_id=grant.pk,
            grant_id=grant.pk,
            data={"request": grant.request_id, "through_seq": pack.events[-1].seq if pack.events else None},
        )
    return pack
