"""Auditor reports over the approval workflow, registered beside the trail's own reports."""

from __future__ import annotations

from django.db.models import Count, F, Max, OuterRef, Subquery
from django.db.models.functions import Coalesce, Trunc

from approvals.models import AccessRequest, Decision, DecisionKind, Grant, GrantState, RequestState
from jitaccess.aggregates import Percentile
from jitaccess.audit.reports import ReportWindow, Row, as_seconds, as_utc_text, report


@report(
    "grants-per-entitlement",
    title="Grants per entitlement",
    columns=("period", "entitlement", "grants", "users"),
)
def grants_per_entitlement(window: ReportWindow) -> list[Row]:
    """Grants issued per entitlement in each period (day, week or month, by the grant's start;
    ``period`` is the first day of the bucket), with the number of distinct grantees."""
    grouped = (
        Grant.objects.filter(**window.bounds("starts_at"))
        .annotate(bucket=Trunc("starts_at", window.period))
        .values("bucket", "entitlement__slug")
        .annotate(grants=Count("id"), users=Count("user", distinct=True))
        .order_by("bucket", "entitlement__slug")
    )
    return [
        {
            "period": row["bucket"].date().isoformat(),
            "entitlement": row["entitlement__slug"],
            "grants": row["grants"],
            "users": row["users"],
        }
        for row in grouped
    ]


def _time_statistics(waited: F) -> dict[str, object]:
    return {
        "count": Count("id"),
        "median": Percentile(waited, 0.5),
        "p90": Percentile(waited, 0.9),
        "max": Max(waited),
    }


def _stage_opened_at() -> Coalesce:
    # Stages are decided in order, so a stage opened with the last approval of any earlier stage
    # (the one that completed the previous stage's quorum); the first stage, at submission.
    earlier_approvals = Decision.objects.filter(
        request=OuterRef("request"), stage_order__lt=OuterRef("stage_order"), decision=DecisionKind.APPROVE
    ).order_by("-decided_at")
    return Coalesce(Subquery(earlier_approvals.values("decided_at")[:1]), F("request__created_at"))


@report(
    "decision-times",
    title="Decision times",
    columns=("entitlement", "stage", "count", "median_seconds", "p90_seconds", "max_seconds"),
)
def decision_times(window: ReportWindow) -> list[Row]:
    """How long approvers took, per entitlement and stage: seconds from the stage opening (the
    request's submission for the first stage, the decision completing the previous stage
    otherwise) to each decision made in the window. The row with ``stage`` null is the whole
    request: submission to its final approval or denial."""
    stages = (
        Decision.objects.filter(**window.bounds("decided_at"))
        .annotate(opened_at=_stage_opened_at())
        .values(slug=F("request__entitlement__slug"), stage=F("stage_order"))
        .annotate(**_time_statistics(F("decided_at") - F("opened_at")))
    )
    requests = (
        AccessRequest.objects.filter(
            state__in=[RequestState.APPROVED, RequestState.DENIED], **window.bounds("decided_at")
        )
        .values(slug=F("entitlement__slug"))
        .annotate(**_time_statistics(F("decided_at") - F("created_at")))
    )
    rows = [
        {
            "entitlement": row["slug"],
            "stage": row.get("stage"),
            "count": row["count"],
            "median_seconds": as_seconds(row["median"]),
            "p90_seconds": as_seconds(row["p90"]),
            "max_seconds": as_seconds(row["max"]),
        }
        for row in [*stages, *requests]
    ]
    # Each entitlement's stages in order, then its whole-request row.
    return sorted(rows, key=lambda row: (row["entitlement"], row["stage"] is None, row["stage"] or 0))


@report(
    "early-revocations",
    title="Early revocations",
    columns=(
        "grant",
        "entitlement",
        "user",
        "revoked_by",
        "reason",
        "starts_at",
        "expires_at",
        "revoked_at",
        "seconds_cut_short",
    ),
)
def early_revocations(window: ReportWindow) -> list[Row]:
    """Grants revoked before they were due to expire (revoked in the window), newest first: who
    held it, who revoked it and why, and how many seconds of access that cut short."""
    revoked = (
        # Two filter calls: the window's `until` bound is an ended_at__lt of its own.
        Grant.objects.filter(state=GrantState.REVOKED, ended_at__lt=F("expires_at"))
        .filter(**window.bounds("ended_at"))
        .annotate(cut_short=F("expires_at") - F("ended_at"))
        .values(
            "id",
            "entitlement__slug",
            "user__username",
            "ended_by__username",
            "end_reason",
            "starts_at",
            "expires_at",
            "ended_at",
            "cut_short",
        )
        .order_by("-ended_at", "-id")
    )
    return [
        {
            "grant": row["id"],
            "entitlement": row["entitlement__slug"],
            "user": row["user__username"],
            "revoked_by": row["ended_by__username"],
            "reason": row["end_reason"],
            "starts_at": as_utc_text(row["starts_at"]),
            "expires_at": as_utc_text(row["expires_at"]),
            "revoked_at": as_utc_text(row["ended_at"]),
            "seconds_cut_short": as_seconds(row["cut_short"]),
        }
        for row in revoked
    ]
