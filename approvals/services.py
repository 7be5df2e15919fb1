"""Writes of the approval workflow. Each is one transaction that locks, checks, writes the new
state and its audit event, and defers side effects until after commit."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction

from approvals import notifications, workflow
from approvals.expiry import expiry_enqueue_if_due, grant_expire_locked, request_expire_locked
from approvals.models import (
    AccessRequest,
    Decision,
    DecisionKind,
    Entitlement,
    Grant,
    GrantCredential,
    GrantState,
    RequestState,
    SecurityGroup,
    StandingMembership,
)
from approvals.permissions import can_revoke_grant, can_withdraw_request
from jitaccess import clock
from jitaccess.audit.models import Outcome
from jitaccess.audit.services import audit_record
from jitaccess.errors import Conflict, DomainError, InvalidInput, NotAllowed
from jitaccess.roles import fresh_group_names
from jitaccess.tokens import new_token, token_digest

GRANT_CREDENTIAL_PREFIX = "jitg_"


def _refused(
    error: DomainError, action: str, *, actor: Any, target_type: str, target_id: Any, **extra: Any
) -> DomainError:
    """Record a refused attempt in a transaction of its own and hand the error back to raise.

    Call it outside the action's transaction: the refusal is kept although the action is not.
    """
    with transaction.atomic():
        audit_record(
            action,
            actor=actor,
            outcome=Outcome.DENIED,
            target_type=target_type,
            target_id=target_id,
            data={"code": error.code},
            **extra,
        )
    return error


# --- requests -----------------------------------------------------------------------------------


def request_submit(
    *,
    requester: Any,
    entitlement: Entitlement,
    purpose: str,
    justification: str,
    ticket: str = "",
    duration_seconds: int | None = None,
) -> AccessRequest:
    justification = (justification or "").strip()
    ticket = (ticket or "").strip()
    if not entitlement.is_active:
        raise InvalidInput("entitlement", "This entitlement is not open for requests.")
    if entitlement.requester_group.name not in fresh_group_names(requester):
        raise _refused(
            NotAllowed(
                f"Only members of {entitlement.requester_group.name} may request {entitlement.slug}.",
                code="not_in_requester_group",
            ),
            "request.submit_refused",
            actor=requester,
            target_type="entitlement",
            target_id=entitlement.slug,
        )
    if duration_seconds is None:
        duration_seconds = entitlement.default_duration_seconds
    problems = workflow.submission_problems(
        entitlement,
        purpose=purpose,
        justification=justification,
        ticket=ticket,
        duration_seconds=duration_seconds,
        min_seconds=settings.JIT_MIN_GRANT_SECONDS,
    )
    if problems:
        field, message = next(iter(problems.items()))
        raise InvalidInput(field, message)
    stages = list(entitlement.stages.select_related("approver_group"))
    if not stages:
        raise InvalidInput("entitlement", "This entitlement has no approval stages configured.")

    snapshot = workflow.policy_snapshot(entitlement, stages)
    first = snapshot["stages"][0]
    with transaction.atomic():
        now = clock.now()
        request = AccessRequest.objects.create(
            requester=requester,
            entitlement=entitlement,
            security_group=entitlement.security_group,
            purpose=purpose,
            justification=justification,
            ticket=ticket,
            duration_seconds=duration_seconds,
            state=RequestState.PENDING,
            current_stage=first["order"],
            open_stage_group=first["approver_group"],
            approver_groups=workflow.approver_groups_key(snapshot),
            policy_snapshot=snapshot,
            digest="",
            created_at=now,
            pending_expires_at=now + timedelta(seconds=entitlement.pending_ttl_seconds),
        )
        request.digest = workflow.request_digest(request)
        request.save(update_fields=["digest"])
        notifications.stage_opened(request, now=now)
        audit_record(
            "request.submitted",
            actor=requester,
            target_type="access_request",
            target_id=request.pk,
            data={
                "entitlement": entitlement.slug,
                "purpose": purpose,
                "ticket": ticket,
                "duration_seconds": duration_seconds,
                "digest": request.digest,
            },
        )
    return request


def decision_refusal(
    request: AccessRequest, *, approver: Any, stage: int | None, digest: str | None, now: Any
) -> DomainError | None:
    """Why this approver may not decide this request now, or None. Order matters: the answer
    for a self-approval must be 403 whatever stage or digest the caller sent."""
    if request.state != RequestState.PENDING:
        return Conflict(f"The request is {request.state}; it can no longer be decided.", code="not_pending")
    if now >= request.pending_expires_at:
        return Conflict("The request has expired without a decision.", code="request_expired")
    if approver.pk == request.requester_id:
        return NotAllowed("You cannot decide your own request.", code="self_approval")
    if Decision.objects.filter(request=request, approver=approver).exists():
        return NotAllowed("You have already decided a stage of this request.", code="already_decided")
    # Read group membership now, not from a cache: a role removed a second ago no longer counts.
    if request.open_stage_group not in fresh_group_names(approver):
        return NotAllowed(
            f"Only members of {request.open_stage_group} may decide the open stage.", code="not_in_stage_group"
        )
    if stage is not None and stage != request.current_stage:
        return Conflict(
            f"Stage {stage} is not the open stage (the open stage is {request.current_stage}).",
            code="stage_mismatch",
        )
    if workflow.request_digest(request) != request.digest:
        # The stored content no longer hashes to what earlier approvers signed.
        return Conflict("The request content does not match its digest.", code="digest_invalid")
    if digest is not None and digest != request.digest:
        return Conflict("The request changed from the version you reviewed.", code="digest_mismatch")
    return None


# Refusals that no later moment can lift for this person.
_FINAL_REFUSALS = frozenset({"self_approval", "already_decided", "not_pending", "request_expired"})


def decision_refusal_is_final(refusal: DomainError | None, request: AccessRequest, *, approver: Any) -> bool:
    """Will this approver be refused whatever happens next? Then a page or the API may let the
    service refuse (and audit) the attempt at once, without asking for a re-authentication first.
    "Not your stage" is final only for someone in none of the request's approver groups: for
    anyone else the stage can still move on to theirs."""
    if refusal is None:
        return False
    if refusal.code in _FINAL_REFUSALS:
        return True
    groups = fresh_group_names(approver)
    return refusal.code == "not_in_stage_group" and not any(f"|{g}|" in request.approver_groups for g in groups)


def request_decide(
    request: AccessRequest,
    *,
    approver: Any,
    decision: str,
    comment: str = "",
    stage: int | None = None,
    digest: str | None = None,
) -> AccessRequest:
    """Record one approver's approve / deny of the open stage (invariants 1–4).

    A refused attempt is itself audited and committed before the refusal is raised.
    """
    comment = (comment or "").strip()
    if decision not in DecisionKind.values:
        raise InvalidInput("decision", "Must be approve or deny.")

    with transaction.atomic():
        # The row lock serialises every decision on this request: concurrent approvals of one
        # stage see each other's rows, so exactly one of them completes the quorum.
        request = AccessRequest.objects.select_for_update().get(pk=request.pk)
        now = clock.now()
        refusal = decision_refusal(request, approver=approver, stage=stage, digest=digest, now=now)
        if refusal is not None:
            if refusal.code == "request_expired":
                request_expire_locked(request, now=now)
            audit_record(
                f"decision.refused.{refusal.code}",
                actor=approver,
                outcome=Outcome.DENIED,
                target_type="access_request",
                target_id=request.pk,
                data={"decision": decision, "stage": stage, "open_stage": request.current_stage},
            )
        elif decision == DecisionKind.DENY and not comment:
            # Checked after the refusals, so a self-denial is a refused, audited 403, not a 400.
            refusal = InvalidInput("comment", "A comment is required to deny a request.")
        else:
            _decision_apply(request, approver=approver, decision=decision, comment=comment, now=now)
    if refusal is not None:
        raise refusal
    return request


def _decision_apply(request: AccessRequest, *, approver: Any, decision: str, comment: str, now: Any) -> None:
    order = request.current_stage
    recorded = Decision.objects.create(
        request=request,
        stage_order=order,
        approver=approver,
        decision=decision,
        comment=comment,
        digest=request.digest,
        decided_at=now,
    )
    audit_record(
        "decision.approved" if decision == DecisionKind.APPROVE else "decision.denied",
        actor=approver,
        target_type="access_request",
        target_id=request.pk,
        data={"stage": order, "digest": request.digest, "comment": comment},
    )
    notifications.decision_recorded(recorded)
    if decision == DecisionKind.DENY:
        request.state = RequestState.DENIED
        request.decided_at = now
        request.open_stage_group = ""
        request.save(update_fields=["state", "decided_at", "open_stage_group"])
        audit_record("request.denied", actor=approver, target_type="access_request", target_id=request.pk)
        return

    snapshot = request.policy_snapshot
    approvals = Decision.objects.filter(request=request, stage_order=order, decision=DecisionKind.APPROVE).count()
    if approvals < workflow.snapshot_stage(snapshot, order)["required_approvals"]:
        return
    following = workflow.next_stage_order(snapshot, order)
    if following is not None:
        request.current_stage = following
        request.open_stage_group = workflow.snapshot_stage(snapshot, following)["approver_group"]
        request.save(update_fields=["current_stage", "open_stage_group"])
        audit_record(
            "request.stage_opened", target_type="access_request", target_id=request.pk, data={"stage": following}
        )
        notifications.stage_opened(request, now=now)
        return
    request.state = RequestState.APPROVED
    request.decided_at = now
    request.current_stage = None
    request.open_stage_group = ""
    request.save(update_fields=["state", "decided_at", "current_stage", "open_stage_group"])
    audit_record("request.approved", actor=approver, target_type="access_request", target_id=request.pk)
    _grant_issue(request, approver=approver, now=now)


def _grant_issue(request: AccessRequest, *, approver: Any, now: Any) -> Grant:
    """Issued by the final approval: that approver is the event's actor."""
    grant = Grant.objects.create(
        request=request,
        user_id=request.requester_id,
        security_group=request.security_group,
        entitlement=request.entitlement,
        starts_at=now,
        expires_at=now + timedelta(seconds=request.duration_seconds),
    )
    audit_record(
        "grant.issued",
        actor=approver,
        target_type="grant",
        target_id=grant.pk,
        grant_id=grant.pk,
        data={
            "request": request.pk,
            "user": request.requester_id,
            "security_group": grant.security_group.name,
            "expires_at": grant.expires_at.isoformat(),
        },
    )
    expiry_enqueue_if_due(grant)
    notifications.grant_issued(grant)
    return grant


def request_withdraw(request: AccessRequest, *, acting_user: Any) -> AccessRequest:
    with transaction.atomic():
        request = AccessRequest.objects.select_for_update().get(pk=request.pk)
        refusal: DomainError | None = None
        if not can_withdraw_request(acting_user, request):
            refusal = NotAllowed("Only the requester may withdraw a request.", code="not_requester")
        elif request.state == RequestState.WITHDRAWN:
            return request  # repeating a transition is a no-op
        else:
            now = clock.now()
            if request.state == RequestState.PENDING and now >= request.pending_expires_at:
                request_expire_locked(request, now=now)  # committed before the 409 below
            if request.state != RequestState.PENDING:
                refusal = Conflict(
                    f"The request is {request.state}; it can no longer be withdrawn.", code="not_pending"
                )
            else:
                request.state = RequestState.WITHDRAWN
                request.decided_at = now
                request.open_stage_group = ""
                request.save(update_fields=["state", "decided_at", "open_stage_group"])
                audit_record("request.withdrawn", actor=acting_user, target_type="access_request", target_id=request.pk)
    if refusal is not None:
        raise _refused(
            refusal, "request.withdraw_refused", actor=acting_user, target_type="access_request", target_id=request.pk
        )
    return request


# --- grants -------------------------------------------------------------------------------------


def grant_revoke(grant: Grant, *, acting_user: Any, reason: str = "") -> Grant:
    reason = (reason or "").strip()
    with transaction.atomic():
        grant = Grant.objects.select_for_update().get(pk=grant.pk)
        now = clock.now()
        conflict: DomainError | None = None
        if not can_revoke_grant(acting_user, grant):
            conflict = NotAllowed("Only the grantee or a security admin may revoke a grant.", code="not_allowed")
        elif grant.state == GrantState.REVOKED:
            return grant
        else:
            if grant.state == GrantState.ACTIVE and now >= grant.expires_at:
                grant_expire_locked(grant, now=now)
            if grant.state != GrantState.ACTIVE:
                conflict = Conflict(f"The grant is {grant.state}; it can no longer be revoked.", code="not_active")
        if conflict is None:
            grant.state = GrantState.REVOKED
            grant.ended_at = now
            grant.ended_by = acting_user
            grant.end_reason = reason or "revoked"
            grant.save(update_fields=["state", "ended_at", "ended_by", "end_reason"])
            GrantCredential.objects.filter(grant=grant, revoked_at__isnull=True).update(revoked_at=now)
            audit_record(
                "grant.revoked",
                actor=acting_user,
                target_type="grant",
                target_id=grant.pk,
                grant_id=grant.pk,
                data={"reason": grant.end_reason},
            )
    if conflict is not None:
        raise _refused(
            conflict,
            "grant.revoke_refused",
            actor=acting_user,
            target_type="grant",
            target_id=grant.pk,
            grant_id=grant.pk,
        )
    return grant


def grant_credential_mint(grant: Grant, *, acting_user: Any) -> tuple[str, GrantCredential]:
    """Mint the grant's one credential; the clear value is returned once and never stored."""
    token = new_token(GRANT_CREDENTIAL_PREFIX)
    with transaction.atomic():
        grant = Grant.objects.select_for_update().get(pk=grant.pk)
        now = clock.now()
        refusal = _mint_refusal(grant, acting_user=acting_user, now=now)
        if refusal is None:
            credential = GrantCredential.objects.create(
                grant=grant,
                token_hash=token_digest(token),
                prefix=token[: len(GRANT_CREDENTIAL_PREFIX) + 6],
                created_at=now,
                expires_at=grant.expires_at,
            )
            audit_record(
                "credential.minted",
                actor=acting_user,
                target_type="grant_credential",
                target_id=credential.pk,
                grant_id=grant.pk,
                data={"prefix": credential.prefix, "expires_at": credential.expires_at.isoformat()},
            )
    if refusal is not None:
        raise _refused(
            refusal,
            "credential.mint_refused",
            actor=acting_user,
            target_type="grant",
            target_id=grant.pk,
            grant_id=grant.pk,
        )
    return token, credential


def _mint_refusal(grant: Grant, *, acting_user: Any, now: Any) -> DomainError | None:
    if acting_user.pk != grant.user_id:
        return NotAllowed("Only the grantee may mint the grant's credential.", code="not_grantee")
    if grant.state != GrantState.ACTIVE or now >= grant.expires_at:
        return Conflict("The grant is no longer active.", code="not_active")
    if GrantCredential.objects.filter(grant=grant).exists():
        return Conflict("The credential for this grant was already minted.", code="already_minted")
    return None


# --- security groups ----------------------------------------------------------------------------


def standing_member_problem(user: Any) -> str | None:
    if not getattr(user, "is_service_account", False):
        return "Only service accounts may be standing members of a security group; people get temporary grants."
    return None


def standing_member_add(security_group: SecurityGroup, *, user: Any, acting_user: Any | None) -> StandingMembership:
    problem = standing_member_problem(user)
    if problem:
        raise InvalidInput("user", problem, code="not_service_account")
    with transaction.atomic():
        membership, created = StandingMembership.objects.get_or_create(security_group=security_group, user=user)
        if created:
            audit_record(
                "security_group.member_added",
                actor=acting_user,
                target_type="security_group",
                target_id=security_group.pk,
                data={"group": security_group.name, "user": user.username},
            )
    return membership


def standing_member_remove(membership: StandingMembership, *, acting_user: Any | None) -> None:
    with transaction.atomic():
        group, user = membership.security_group, membership.user
        membership.delete()
        audit_record(
            "security_group.member_removed",
            actor=acting_user,
            target_type="security_group",
            target_id=group.pk,
            data={"group": group.name, "user": user.username},
        )
