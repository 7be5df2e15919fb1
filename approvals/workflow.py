"""The access-request state machine and its pure rules. No queries here."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from approvals.models import DecisionKind, GrantState, RequestState
from jitaccess.canonical import canonical_sha256, canonical_time
from jitaccess.roles import AUDITORS, SECURITY_ADMINS

REQUEST_TRANSITIONS: dict[str, frozenset[str]] = {
    RequestState.PENDING: frozenset(
        {RequestState.APPROVED, RequestState.DENIED, RequestState.WITHDRAWN, RequestState.EXPIRED}
    ),
    RequestState.APPROVED: frozenset(),
    RequestState.DENIED: frozenset(),
    RequestState.WITHDRAWN: frozenset(),
    RequestState.EXPIRED: frozenset(),
}

GRANT_TRANSITIONS: dict[str, frozenset[str]] = {
    GrantState.ACTIVE: frozenset({GrantState.EXPIRED, GrantState.REVOKED}),
    GrantState.EXPIRED: frozenset(),
    GrantState.REVOKED: frozenset(),
}


def can_transition(table: dict[str, frozenset[str]], current: str, target: str) -> bool:
    return target in table.get(current, frozenset())


def policy_snapshot(entitlement: Any, stages: Iterable[Any]) -> dict[str, Any]:
    """The policy a request is judged by, frozen at submission."""
    return {
        "entitlement": entitlement.slug,
        "name": entitlement.name,
        "security_group": entitlement.security_group.name,
        "requester_group": entitlement.requester_group.name,
        "purposes": list(entitlement.purposes),
        "requires_ticket": entitlement.requires_ticket,
        "default_duration_seconds": entitlement.default_duration_seconds,
        "max_duration_seconds": entitlement.max_duration_seconds,
        "pending_ttl_seconds": entitlement.pending_ttl_seconds,
        "stages": [
            {
                "order": stage.order,
                "name": stage.name,
                "approver_group": stage.approver_group.name,
                "required_approvals": stage.required_approvals,
                "deadline_seconds": stage.deadline_seconds,
            }
            for stage in sorted(stages, key=lambda s: s.order)
        ],
    }


def request_digest(request: Any) -> str:
    """SHA-256 of the canonical request content: what an approver signs.

    Computed from the stored row, so it is recomputed at every decision and a row edited
    behind the application's back no longer matches what was signed.
    """
    body = {
        "id": request.pk,
        "requester_id": request.requester_id,
        "security_group_id": request.security_group_id,
        "purpose": request.purpose,
        "justification": request.justification,
        "ticket": request.ticket,
        "duration_seconds": request.duration_seconds,
        "created_at": canonical_time(request.created_at),
        "policy": request.policy_snapshot,
    }
    return canonical_sha256(body)


def approver_groups_key(snapshot: dict[str, Any]) -> str:
    return "|" + "|".join(sorted({stage["approver_group"] for stage in snapshot["stages"]})) + "|"


def snapshot_stage(snapshot: dict[str, Any], order: int) -> dict[str, Any]:
    for stage in snapshot["stages"]:
        if stage["order"] == order:
            return stage
    raise KeyError(order)


def next_stage_order(snapshot: dict[str, Any], order: int) -> int | None:
    later = [stage["order"] for stage in snapshot["stages"] if stage["order"] > order]
    return min(later) if later else None


def stage_states(
    snapshot: dict[str, Any], *, state: str, current_stage: int | None, decisions: Iterable[Any]
) -> list[dict[str, Any]]:
    """Each stage as waiting / open / approved / denied, with its decisions."""
    by_stage: dict[int, list[Any]] = {}
    for decision in decisions:
        by_stage.setdefault(decision.stage_order, []).append(decision)
    result = []
    for stage in snapshot["stages"]:
        order = stage["order"]
        stage_decisions = by_stage.get(order, [])
        if any(d.decision == DecisionKind.DENY for d in stage_decisions):
            stage_state = "denied"
        elif state == RequestState.APPROVED or (current_stage is not None and order < current_stage):
            stage_state = "approved"
        elif state == RequestState.PENDING and order == current_stage:
            stage_state = "open"
        else:
            stage_state = "waiting"
        result.append({**stage, "state": stage_state, "decisions": stage_decisions})
    return result


def submission_problems(
    entitlement: Any, *, purpose: str, justification: str, ticket: str, duration_seconds: int, min_seconds: int
) -> dict[str, str]:
    """Every problem of a request's input against its entitlement's policy, by field, in the
    order a form shows them. Empty when the request may be submitted."""
    problems: dict[str, str] = {}
    if purpose not in entitlement.purposes:
        problems["purpose"] = f"Not an allowed purpose; choose one of: {', '.join(entitlement.purposes)}."
    if not justification.strip():
        problems["justification"] = "A justification is required."
    if entitlement.requires_ticket and not ticket.strip():
        problems["ticket"] = "This entitlement requires a ticket reference."
    problem = duration_problem(duration_seconds, max_seconds=entitlement.max_duration_seconds, min_seconds=min_seconds)
    if problem:
        problems["duration_seconds"] = f"Duration {problem}."
    return problems


def duration_problem(duration_seconds: int, *, max_seconds: int, min_seconds: int) -> str | None:
    """Why a requested duration is not acceptable, or None (invariant 5)."""
    if duration_seconds <= 0:
        return "must be greater than zero"
    if duration_seconds < min_seconds:
        return f"must be at least {min_seconds} seconds"
    if duration_seconds > max_seconds:
        return f"must be at most {max_seconds} seconds (the policy maximum)"
    return None


# Separation of duties: security admins write the policy and auditors must change nothing
# (invariant 14), so neither role may be the group that requests or approves access.
RESERVED_GROUPS = frozenset({SECURITY_ADMINS, AUDITORS})


def reserved_group_problem(name: str) -> str | None:
    """Why a group may not request or approve access, or None."""
    if name in RESERVED_GROUPS:
        return f"{name} is a reserved role group; it can neither request nor approve access."
    return None
