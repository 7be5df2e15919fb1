"""Auditor reports: each one query the database aggregates, named and described for the API.

The registry lives here because the audit code imports no app: reports over the trail are
defined below, and apps register their own (``approvals/reports.py``) when they load.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import Count, Max, Min, Q

from jitaccess.audit.models import AuditEvent, Outcome

PERIODS = ("day", "week", "month")
DEFAULT_PERIOD = "month"

Row = dict[str, Any]


@dataclass(frozen=True)
class ReportWindow:
    """The time a report covers (``since`` inclusive, ``until`` exclusive; None is open-ended)
    and the bucket size of time series."""

    since: datetime | None = None
    until: datetime | None = None
    period: str = DEFAULT_PERIOD

    def bounds(self, field: str) -> dict[str, datetime]:
        """Lookups keeping ``field`` inside the window."""
        lookups = {}
        if self.since is not None:
            lookups[f"{field}__gte"] = self.since
        if self.until is not None:
            lookups[f"{field}__lt"] = self.until
        return lookups

    def as_data(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "period": self.period,
        }


@dataclass(frozen=True)
class Report:
    name: str
    title: str
    description: str
    columns: tuple[str, ...]
    rows: Callable[[ReportWindow], list[Row]]


REPORTS: dict[str, Report] = {}


def report(name: str, *, title: str, columns: tuple[str, ...]) -> Callable[[Callable], Callable]:
    """Register the decorated ``rows(window)`` function; its docstring is the description."""

    def register(rows: Callable[[ReportWindow], list[Row]]) -> Callable[[ReportWindow], list[Row]]:
        REPORTS[name] = Report(name, title, inspect.cleandoc(rows.__doc__ or ""), columns, rows)
        return rows

    return register


def as_seconds(value: timedelta | None) -> float | None:
    return None if value is None else round(value.total_seconds(), 3)


def as_utc_text(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


@report(
    "refused-attempts",
    title="Refused and failed attempts",
    columns=("action", "outcome", "actor", "attempts", "first_at", "last_at"),
)
def refused_attempts(window: ReportWindow) -> list[Row]:
    """Every denied or failed outcome in the trail, grouped by action and actor, most frequent
    first: refused decisions and reveals, failed sign-ins, failed decryptions."""
    grouped = (
        AuditEvent.objects.filter(outcome__in=[Outcome.DENIED, Outcome.FAILED], **window.bounds("at"))
        .values("action", "outcome", "actor_name")
        .annotate(attempts=Count("id"), first_at=Min("at"), last_at=Max("at"))
        .order_by("-attempts", "action", "actor_name")
    )
    return [
        {
            "action": row["action"],
            "outcome": row["outcome"],
            "actor": row["actor_name"] or None,
            "attempts": row["attempts"],
            "first_at": as_utc_text(row["first_at"]),
            "last_at": as_utc_text(row["last_at"]),
        }
        for row in grouped
    ]


REVEAL_OUTCOMES = {"revealed": "secret.revealed", "denied": "secret.reveal_denied", "failed": "secret.reveal_failed"}


@report(
    "reveals-per-secret",
    title="Reveals per secret",
    columns=("secret", "revealed", "denied", "failed", "actors"),
)
def reveals_per_secret(window: ReportWindow) -> list[Row]:
    """For each secret that anyone tried to reveal: how often it was revealed, refused, or could
    not be decrypted, and by how many distinct people or service accounts. Most revealed first."""
    counts = {column: Count("id", filter=Q(action=action)) for column, action in REVEAL_OUTCOMES.items()}
    grouped = (
        AuditEvent.objects.filter(target_type="secret", action__in=REVEAL_OUTCOMES.values(), **window.bounds("at"))
        .values("target_id")
        .annotate(**counts, actors=Count("actor_id", distinct=True))
        .order_by("-revealed", "target_id")
    )
    return [{"secret": row.pop("target_id"), **row} for row in grouped]
