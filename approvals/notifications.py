"""Email notifications of the approval workflow: who is told what, and when.

- Hooks (``stage_opened``, ``decision_recorded``, ``grant_issued``) run inside a service's
  transaction and only enqueue a task after it commits; a rollback sends nothing.
- Sweeps (``expiry_warnings_claim``, ``stage_deadlines_claim``) run from beat. Each claims its rows
  with ``skip_locked`` and stamps them in the same transaction, so two beat hosts never claim a
  row twice and each warning, reminder and escalation goes out once.
- Tasks carry ids only. ``notice_for`` reads the rows fresh and decides again, when the task runs,
  whether the message is still true (a stage may have closed, a grant may have been revoked) and
  who should get it: active users with an address, never the requester as an approver.

A message names the request, its justification and links to the pages; it never carries a
credential, token or secret. Sending is not a privileged action, so it writes no audit event;
the worker logs each message sent or refused by the relay (never its body).
"""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMultiAlternatives
from django.db.models import F
from django.template.loader import render_to_string

from approvals import links, workflow
from approvals.models import AccessRequest, Decision, DecisionKind, Grant, GrantState, RequestState
from approvals.templatetags.access_time import duration
from jitaccess import clock
from jitaccess.enqueue import claim_in_batches, enqueue_after_commit
from jitaccess.roles import SECURITY_ADMINS

logger = logging.getLogger(__name__)

APPROVAL_NEEDED = "approval_needed"  # a request, its open stage: to the stage's approvers
DECISION = "decision"  # a decision: to the requester (a stage approved, or the request denied)
GRANT_ISSUED = "grant_issued"  # a grant: to its holder, with the end time
EXPIRY_WARNING = "expiry_warning"  # a grant: to its holder, shortly before the end
STAGE_REMINDER = "stage_reminder"  # a request, its overdue stage: to the stage's approvers
STAGE_ESCALATION = "stage_escalation"  # a request, its overdue stage: to the security admins
KINDS = frozenset({APPROVAL_NEEDED, DECISION, GRANT_ISSUED, EXPIRY_WARNING, STAGE_REMINDER, STAGE_ESCALATION})

# What a relay or the network raises; the send task retries these with backoff.
SEND_ERRORS: tuple[type[Exception], ...] = (smtplib.SMTPException, OSError)


@dataclass(frozen=True)
class Notice:
    """One message to send, rendered per recipient from ``templates/email/<template>.txt|html``."""

    template: str
    subject: str
    recipients: list[Any]
    context: dict[str, Any] = field(default_factory=dict)


# --- hooks: called by approvals.services inside the transaction ----------------------------------


def stage_opened(request: AccessRequest, *, now: datetime) -> None:
    """Start the clock of the request's open stage and, after commit, ask its approvers.

    The clock fields are bookkeeping outside the request digest: approvers sign what is asked,
    not when they were reminded.
    """
    stage = workflow.snapshot_stage(request.policy_snapshot, request.current_stage)
    deadline = stage.get("deadline_seconds")
    request.stage_opened_at = now
    request.stage_deadline_at = now + timedelta(seconds=deadline) if deadline else None
    request.stage_reminded_at = None
    request.save(update_fields=["stage_opened_at", "stage_deadline_at", "stage_reminded_at"])
    _enqueue_after_commit([APPROVAL_NEEDED], request.pk, stage=request.current_stage)


def decision_recorded(decision: Decision) -> None:
    _enqueue_after_commit([DECISION], decision.pk)


def grant_issued(grant: Grant) -> None:
    _enqueue_after_commit([GRANT_ISSUED], grant.pk)


def _enqueue_after_commit(
    kinds: list[str], object_id: int, *, stage: int | None = None, on_failure: Callable[[], None] | None = None
) -> None:
    from approvals.tasks import notify

    enqueue_after_commit(
        notify,
        args=[kinds, object_id, stage],
        what=f"{'+'.join(kinds)} notification for {object_id}",
        on_failure=on_failure,
    )


# --- sweeps: called by beat tasks --------------------------------------------------------------


def expiry_warnings_claim() -> int:
    """Claim the active grants that end within the warning window and warn their holders once.

    Grants no longer than the window are left out: the mail that issued them named the end.
    """
    window = timedelta(seconds=settings.JIT_EXPIRY_WARNING_SECONDS)

    def due(now: datetime) -> Any:
        return (
            Grant.objects.filter(
                state=GrantState.ACTIVE, expiry_warned_at__isnull=True, expires_at__gt=now, expires_at__lte=now + window
            )
            .filter(expires_at__gt=F("starts_at") + window)
            .order_by("expires_at")
        )

    def claim(grant: Grant, now: datetime) -> None:
        grant.expiry_warned_at = now
        grant.save(update_fields=["expiry_warned_at"])
        _enqueue_after_commit([EXPIRY_WARNING], grant.pk, on_failure=_unclaim(Grant, grant.pk, "expiry_warned_at", now))

    return claim_in_batches(due, claim)


def stage_deadlines_claim() -> int:
    """Claim the pending requests whose open stage passed its deadline: remind the stage's
    approvers and escalate to the security admins, once per stage."""

    def due(now: datetime) -> Any:
        return AccessRequest.objects.filter(
            state=RequestState.PENDING,
            stage_reminded_at__isnull=True,
            stage_deadline_at__lte=now,
            pending_expires_at__gt=now,
        ).order_by("stage_deadline_at")

    def claim(request: AccessRequest, now: datetime) -> None:
        request.stage_reminded_at = now
        request.save(update_fields=["stage_reminded_at"])
        _enqueue_after_commit(
            [STAGE_REMINDER, STAGE_ESCALATION],
            request.pk,
            stage=request.current_stage,
            on_failure=_unclaim(AccessRequest, request.pk, "stage_reminded_at", now),
        )

    return claim_in_batches(due, claim)


def _unclaim(model: Any, pk: int, stamp: str, claimed_at: datetime) -> Callable[[], None]:
    """Undo a claim whose task never reached the broker, so the next sweep tries again.

    Compare-and-swap on the stamp: a claim made since by another sweep is left alone.
    """

    def undo() -> None:
        model.objects.filter(pk=pk, **{stamp: claimed_at}).update(**{stamp: None})

    return undo


# --- tasks: what to send, decided again from fresh rows -----------------------------------------


def recipients_of(kind: str, object_id: int, stage: int | None = None) -> list[int]:
    """Ids of the users who should get this notification now; empty when it is no longer due."""
    notice = notice_for(kind, object_id, stage)
    return [user.pk for user in notice.recipients] if notice else []


def deliver(kind: str, object_id: int, user_id: int, stage: int | None = None) -> bool:
    """Send one notification to one user if it is still due to them. Raises ``SEND_ERRORS``."""
    notice = notice_for(kind, object_id, stage)
    recipient = next((user for user in notice.recipients if user.pk == user_id), None) if notice else None
    if recipient is None:
        logger.info("%s notification for %s no longer due to user %s; not sent", kind, object_id, user_id)
        return False
    message = compose(notice, recipient)
    try:
        message.send()
    except SEND_ERRORS as exc:
        # The relay's answer, never the message: bodies quote the justification.
        logger.warning(
            "could not send %s notification for %s to user %s: %s: %s",
            kind,
            object_id,
            user_id,
            type(exc).__name__,
            exc,
        )
        raise
    logger.info("sent %s notification for %s to user %s", kind, object_id, user_id)
    return True


def compose(notice: Notice, recipient: Any) -> EmailMultiAlternatives:
    context = {**notice.context, "recipient_name": display_name(recipient)}
    message = EmailMultiAlternatives(
        subject=" ".join(notice.subject.split()),  # one line: a name with a newline cannot add headers
        body=render_to_string(f"email/{notice.template}.txt", context),
        to=[recipient.email],
        # RFC 3834: no vacation auto-replies to an unattended sender.
        headers={"Auto-Submitted": "auto-generated"},
    )
    message.attach_alternative(render_to_string(f"email/{notice.template}.html", context), "text/html")
    return message


def notice_for(kind: str, object_id: int, stage: int | None = None) -> Notice | None:
    if kind not in KINDS:
        raise ValueError(f"unknown notification kind {kind!r}")
    if kind == DECISION:
        return _decision_notice(object_id)
    if kind in (GRANT_ISSUED, EXPIRY_WARNING):
        return _grant_notice(kind, object_id)
    return _stage_notice(kind, object_id, stage)


def _stage_notice(kind: str, request_id: int, stage: int | None) -> Notice | None:
    request = AccessRequest.objects.select_related("requester").filter(pk=request_id).first()
    now = clock.now()
    if (
        request is None
        or stage is None
        or request.state != RequestState.PENDING
        or request.current_stage != stage
        or now >= request.pending_expires_at
    ):
        return None  # decided, withdrawn, expired, or the stage closed meanwhile
    context = _request_context(request, stage)
    approvers = _stage_approvers(request, stage)
    who, where = context["requester_name"], context["stage_position"]
    if kind == APPROVAL_NEEDED:
        subject = f"Approval needed: {context['entitlement_name']} for {who} ({where})"
        return Notice("approval_needed", subject, approvers, context)
    context["open_for"] = (
        duration(int((now - request.stage_opened_at).total_seconds())) if request.stage_opened_at else ""
    )
    if kind == STAGE_REMINDER:
        subject = f"Reminder, approval overdue: {context['entitlement_name']} for {who} ({where})"
        return Notice("stage_reminder", subject, approvers, context)
    context["eligible_approvers"] = len(approvers)
    subject = (
        f"Escalation, approval overdue: {context['entitlement_name']} for {who} "
        f"({where}, {context['stage']['approver_group']})"
    )
    return Notice("stage_escalation", subject, _security_admins(request), context)


def _decision_notice(decision_id: int) -> Notice | None:
    decision = Decision.objects.select_related("request__requester", "approver").filter(pk=decision_id).first()
    if decision is None:
        return None
    request = decision.request
    context = {
        **_request_context(request, decision.stage_order),
        "approver_name": display_name(decision.approver),
        "comment": decision.comment,
        "decided_at": _when(decision.decided_at),
    }
    recipients = _reachable([request.requester])
    ent = context["entitlement_name"]
    if decision.decision == DecisionKind.DENY:
        return Notice("request_denied", f"Request denied: {ent} (request #{request.pk})", recipients, context)
    if request.state != RequestState.PENDING:
        # Approved: the grant's own mail says so. Withdrawn or expired: the news is stale.
        return None
    if request.current_stage != decision.stage_order:
        context["next_stage"] = _stage_context(request.policy_snapshot, request.current_stage)
    else:
        approvals = request.decisions.filter(stage_order=decision.stage_order, decision=DecisionKind.APPROVE).count()
        context["approvals_missing"] = max(context["stage"]["required_approvals"] - approvals, 0)
    subject = f"{context['stage_position'].capitalize()} approved: {ent} (request #{request.pk})"
    return Notice("stage_approved", subject, recipients, context)


def _grant_notice(kind: str, grant_id: int) -> Notice | None:
    grant = Grant.objects.select_related("request__requester", "user", "security_group").filter(pk=grant_id).first()
    now = clock.now()
    if grant is None or grant.state != GrantState.ACTIVE or now >= grant.expires_at:
        return None  # revoked or ended meanwhile: nothing left to announce or warn about
    request = grant.request
    context = {
        "request": request,
        "entitlement_name": request.policy_snapshot["name"],
        "grant": grant,
        "security_group": grant.security_group.name,
        "starts_at": _when(grant.starts_at),
        "expires_at": _when(grant.expires_at),
        "duration": duration(request.duration_seconds),
        "grant_url": links.grant_url(grant.pk),
        "request_url": links.request_url(request.pk),
    }
    recipients = _reachable([grant.user])
    ent = context["entitlement_name"]
    if kind == GRANT_ISSUED:
        context["approvers"] = [
            {"stage": _stage_context(request.policy_snapshot, d.stage_order), "name": display_name(d.approver)}
            for d in request.decisions.select_related("approver").filter(decision=DecisionKind.APPROVE)
        ]
        return Notice("grant_issued", f"Access granted: {ent} until {context['expires_at']}", recipients, context)
    # Rounded up, so a warning sent a few seconds late still says "10 minutes", not "9".
    context["remaining"] = duration(-(-int((grant.expires_at - now).total_seconds()) // 60) * 60)
    subject = f"Access ends in {context['remaining']}: {ent} (grant #{grant.pk})"
    return Notice("expiry_warning", subject, recipients, context)


# --- recipients ---------------------------------------------------------------------------------


def _people() -> Any:
    return get_user_model().objects.filter(is_active=True).exclude(email="")


def _reachable(users: list[Any]) -> list[Any]:
    return [user for user in users if user.is_active and user.email]


def _stage_approvers(request: AccessRequest, stage: int) -> list[Any]:
    """Who can decide the stage now: its group's members (read now, not from the snapshot time),
    minus the requester and anyone who already decided a stage of this request (invariants 1, 2)."""
    group = workflow.snapshot_stage(request.policy_snapshot, stage)["approver_group"]
    decided = Decision.objects.filter(request=request).values("approver_id")
    return list(
        _people().filter(groups__name=group).exclude(pk=request.requester_id).exclude(pk__in=decided).order_by("pk")
    )


def _security_admins(request: AccessRequest) -> list[Any]:
    return list(_people().filter(groups__name=SECURITY_ADMINS).exclude(pk=request.requester_id).order_by("pk"))


# --- wording ------------------------------------------------------------------------------------


def display_name(user: Any) -> str:
    full = user.get_full_name().strip()
    return f"{full} ({user.username})" if full else user.username


def _request_context(request: AccessRequest, stage: int) -> dict[str, Any]:
    snapshot = request.policy_snapshot
    stage_context = _stage_context(snapshot, stage)
    return {
        "request": request,
        "requester_name": display_name(request.requester),
        "entitlement_name": snapshot["name"],
        "security_group": snapshot["security_group"],
        "purpose": request.get_purpose_display(),
        "duration": duration(request.duration_seconds),
        "submitted_at": _when(request.created_at),
        "pending_expires_at": _when(request.pending_expires_at),
        "stage": stage_context,
        "stage_position": f"stage {stage_context['position']} of {len(snapshot['stages'])}",
        "stage_opened_at": _when(request.stage_opened_at) if request.stage_opened_at else "",
        "stage_deadline_at": _when(request.stage_deadline_at) if request.stage_deadline_at else "",
        "request_url": links.request_url(request.pk),
        "inbox_url": links.inbox_url(),
    }


def _stage_context(snapshot: dict[str, Any], order: int) -> dict[str, Any]:
    orders = [stage["order"] for stage in snapshot["stages"]]
    return {**workflow.snapshot_stage(snapshot, order), "position": orders.index(order) + 1}


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
