"""Reads of the approval workflow, scoped to the caller before anything is fetched."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Q, QuerySet

from approvals.models import (
    AccessRequest,
    ApprovalStage,
    Decision,
    Entitlement,
    Grant,
    GrantState,
    RequestState,
    SecurityGroup,
    StandingMembership,
)
from jitaccess import clock
from jitaccess.audit.models import AuditEvent
from jitaccess.audit.selectors import events_of_grant, events_of_request
from jitaccess.errors import NotFound
from jitaccess.roles import can_read_everything, group_names

# --- the one question the keys app asks ---------------------------------------------------------


def active_grant_for(user: Any, security_group: SecurityGroup | str, *, at: datetime | None = None) -> Grant | None:
    """The user's grant for the group that is usable at ``at`` (default: now), or None.

    Layer 1 of expiry: the clock is compared with ``expires_at`` here, on every use, so a grant
    is refused from ``expires_at`` on even if no worker ever ran.
    """
    at = at or clock.now()
    group_filter = (
        {"security_group": security_group}
        if isinstance(security_group, SecurityGroup)
        else {"security_group__name": security_group}
    )
    return (
        Grant.objects.filter(user=user, state=GrantState.ACTIVE, starts_at__lte=at, expires_at__gt=at, **group_filter)
        .order_by("-expires_at")
        .first()
    )


def active_grant_ids(user: Any, *, at: datetime | None = None) -> list[int]:
    """Ids of every grant the user holds that is usable at ``at`` (default: now)."""
    at = at or clock.now()
    return list(
        Grant.objects.filter(user=user, state=GrantState.ACTIVE, starts_at__lte=at, expires_at__gt=at)
        .order_by("id")
        .values_list("id", flat=True)
    )


def is_standing_member(user: Any, security_group: SecurityGroup | str) -> bool:
    if not getattr(user, "is_service_account", False) or not user.is_active:
        return False
    group_filter = (
        {"security_group": security_group}
        if isinstance(security_group, SecurityGroup)
        else {"security_group__name": security_group}
    )
    return StandingMembership.objects.filter(user=user, **group_filter).exists()


def has_access(user: Any, security_group: SecurityGroup | str, *, at: datetime | None = None) -> bool:
    """Does this principal hold access to this security group right now?"""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    return is_standing_member(user, security_group) or active_grant_for(user, security_group, at=at) is not None


def grant_effective_state(grant: Grant, *, at: datetime) -> str:
    """Time-based truth at read time: an active grant past ``expires_at`` reads expired."""
    if grant.state == GrantState.ACTIVE and at >= grant.expires_at:
        return GrantState.EXPIRED
    return grant.state


# --- lists and objects, scoped ------------------------------------------------------------------


def entitlements_visible_to(user: Any) -> QuerySet[Entitlement]:
    qs = Entitlement.objects.select_related("security_group", "requester_group").prefetch_related(
        "stages__approver_group"
    )
    if can_read_everything(user):
        return qs.order_by("slug")
    groups = group_names(user)
    return (
        qs.filter(is_active=True)
        .filter(Q(requester_group__name__in=groups) | Q(stages__approver_group__name__in=groups))
        .distinct()
        .order_by("slug")
    )


def requests_visible_to(user: Any) -> QuerySet[AccessRequest]:
    """Own requests; requests whose frozen policy names one of the user's groups as approvers, or
    that the user decided; everything for auditors and security admins."""
    qs = AccessRequest.objects.select_related("requester", "entitlement", "security_group")
    if can_read_everything(user):
        return qs
    visible = Q(requester=user) | Q(pk__in=Decision.objects.filter(approver=user).values("request_id"))
    for group in group_names(user):
        visible |= Q(approver_groups__contains=f"|{group}|")
    return qs.filter(visible)


def requests_for_list(user: Any) -> QuerySet[AccessRequest]:
    """The default list: the caller's own requests, or everything for auditors."""
    if can_read_everything(user):
        return requests_visible_to(user)
    return requests_visible_to(user).filter(requester=user)


def requests_awaiting(user: Any) -> QuerySet[AccessRequest]:
    """Requests whose open stage this user may decide now."""
    return (
        requests_in_state(
            AccessRequest.objects.select_related("requester", "entitlement", "security_group"),
            RequestState.PENDING,
            at=clock.now(),
        )
        .filter(open_stage_group__in=group_names(user))
        .exclude(requester=user)
        .exclude(pk__in=Decision.objects.filter(approver=user).values("request_id"))
    )


def requestable_entitlements(user: Any) -> QuerySet[Entitlement]:
    """The entitlements this user may ask for now: open ones whose requester group they are in."""
    return (
        Entitlement.objects.filter(is_active=True, requester_group__name__in=group_names(user))
        .select_related("security_group", "requester_group")
        .prefetch_related("stages__approver_group")
        .order_by("name")
    )


def approver_of_any_stage(user: Any) -> bool:
    """Is the user in a group that some entitlement's stage names as its approvers?"""
    return ApprovalStage.objects.filter(approver_group__name__in=group_names(user)).exists()


def grants_held_by(user: Any, *, at: datetime) -> QuerySet[Grant]:
    """The user's grants usable at ``at``, the one ending soonest first."""
    return grants_in_state(
        Grant.objects.filter(user=user).select_related("security_group", "entitlement", "credential"),
        GrantState.ACTIVE,
        at=at,
    ).order_by("expires_at")


def decisions_by(user: Any) -> QuerySet[Decision]:
    """The decisions this user made, with their requests (for the approver's history)."""
    return Decision.objects.filter(approver=user).select_related("request__requester", "request__entitlement")


# --- time-based truth at read time --------------------------------------------------------------


def request_effective_state(request: AccessRequest, *, at: datetime) -> str:
    """A pending request past its TTL reads expired, whether or not the sweep has run."""
    if request.state == RequestState.PENDING and at >= request.pending_expires_at:
        return RequestState.EXPIRED
    return request.state


def requests_in_state(qs: QuerySet[AccessRequest], state: str, *, at: datetime) -> QuerySet[AccessRequest]:
    if state == RequestState.PENDING:
        return qs.filter(state=RequestState.PENDING, pending_expires_at__gt=at)
    if state == RequestState.EXPIRED:
        return qs.filter(Q(state=RequestState.EXPIRED) | Q(state=RequestState.PENDING, pending_expires_at__lte=at))
    return qs.filter(state=state)


def grants_in_state(qs: QuerySet[Grant], state: str, *, at: datetime) -> QuerySet[Grant]:
    if state == GrantState.ACTIVE:
        return qs.filter(state=GrantState.ACTIVE, expires_at__gt=at)
    if state == GrantState.EXPIRED:
        return qs.filter(Q(state=GrantState.EXPIRED) | Q(state=GrantState.ACTIVE, expires_at__lte=at))
    return qs.filter(state=state)


def grants_visible_to(user: Any) -> QuerySet[Grant]:
    qs = Grant.objects.select_related("user", "security_group", "entitlement", "ended_by")
    if can_read_everything(user):
        return qs
    return qs.filter(user=user)


# --- audit timelines (auditors) -----------------------------------------------------------------


def request_timeline(request_id: int) -> QuerySet[AuditEvent]:
    """The audit events of a request and of the grant it led to, oldest first."""
    grant_ids = list(AccessRequest.objects.filter(pk=request_id).values_list("grant__id", flat=True))
    if not grant_ids:
        raise NotFound("No such request.")
    return events_of_request(request_id, grant_id=grant_ids[0])


def grant_timeline(grant_id: int) -> QuerySet[AuditEvent]:
    """The audit events of a grant, oldest first."""
    if not Grant.objects.filter(pk=grant_id).exists():
        raise NotFound("No such grant.")
    return events_of_grant(grant_id)
