"""Reads of the audit trail and of the configuration change history, for auditors.

The API, the downloads and the HTML pages all read through these functions. Callers validate
filters first (``jitaccess.audit.filters``) and let only auditors in (``jitaccess.roles.is_auditor``,
``IsAuditor`` in the API): the trail is all or nothing, so nothing here is scoped per reader.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from auditlog.models import LogEntry
from django.db.models import Q, QuerySet, Subquery

from jitaccess.audit.models import AuditEvent


@dataclass(frozen=True)
class EventFilters:
    """Validated filters over audit events; None means "any". ``since`` is inclusive, ``until``
    exclusive. ``action`` is an exact name or a family ending in ``.*``."""

    actor: str | None = None
    action: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    grant: int | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    seq_min: int | None = None
    seq_max: int | None = None
    correlation_id: str | None = None

    def as_data(self) -> dict[str, Any]:
        """The filters that were given, as JSON-able audit data."""
        return {
            name: value.isoformat() if isinstance(value, datetime) else value
            for name, value in asdict(self).items()
            if value is not None
        }


@dataclass(frozen=True)
class ChangeFilters:
    """Validated filters over configuration changes; ``model`` is ``app_label.model``."""

    model: str | None = None
    object_pk: str | None = None
    actor: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _action_q(action: str) -> Q:
    if action.endswith(".*"):
        return Q(action__startswith=action[:-1])
    return Q(action=action)


def events_matching(filters: EventFilters) -> QuerySet[AuditEvent]:
    """Events passing every given filter, ascending by ``seq`` (re-order freely: every filter
    has an index that ends in ``seq``)."""
    qs = AuditEvent.objects.all()
    exact = {
        "actor_name": filters.actor,
        "target_type": filters.target_type,
        "target_id": filters.target_id,
        "grant_id": filters.grant,
        "outcome": filters.outcome,
        "correlation_id": filters.correlation_id,
        "at__gte": filters.since,
        "at__lt": filters.until,
        "seq__gte": filters.seq_min,
        "seq__lte": filters.seq_max,
    }
    qs = qs.filter(**{lookup: value for lookup, value in exact.items() if value is not None})
    # A time window also becomes a seq range, found through the ``at`` index: otherwise the
    # planner walks the seq index from the newest event back to the window, row by row. Exact,
    # because ``at`` never decreases along the chain (audit_record makes it so).
    if filters.since is not None:
        qs = qs.filter(seq__gte=Subquery(_first_seq(at__gte=filters.since).order_by("at", "seq")[:1]))
    if filters.until is not None:
        qs = qs.filter(seq__lte=Subquery(_first_seq(at__lt=filters.until).order_by("-at", "-seq")[:1]))
    if filters.action is not None:
        qs = qs.filter(_action_q(filters.action))
    return qs.order_by("seq")


def _first_seq(**at_bound: datetime) -> QuerySet[AuditEvent]:
    return AuditEvent.objects.filter(**at_bound).values("seq")


def _of_grant(grant_id: int) -> Q:
    # Events under the grant carry its id; a refusal aimed at it may only name it as the target.
    return Q(grant_id=grant_id) | Q(target_type="grant", target_id=str(grant_id))


def events_of_grant(grant_id: int) -> QuerySet[AuditEvent]:
    """Everything that happened under the grant or to it, ascending by ``seq``."""
    return AuditEvent.objects.filter(_of_grant(grant_id)).order_by("seq")


def events_of_request(request_id: int, *, grant_id: int | None) -> QuerySet[AuditEvent]:
    """The request's own events (submission, decisions, refusals) and, once granted, every event
    of its grant; ascending by ``seq``."""
    about = Q(target_type="access_request", target_id=str(request_id))
    if grant_id is not None:
        about |= _of_grant(grant_id)
    return AuditEvent.objects.filter(about).order_by("seq")


def events_head_seq() -> int:
    """The sequence number of the newest event (0 for an empty trail)."""
    return AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0


def config_changes(filters: ChangeFilters) -> QuerySet[LogEntry]:
    """django-auditlog's field-level history of configuration models, newest first by id."""
    qs = LogEntry.objects.select_related("actor", "content_type")
    if filters.model is not None:
        app_label, _, model = filters.model.partition(".")
        qs = qs.filter(content_type__app_label=app_label, content_type__model=model)
    lookups = {
        "object_pk": filters.object_pk,
        "actor__username": filters.actor,
        "timestamp__gte": filters.since,
        "timestamp__lt": filters.until,
    }
    return qs.filter(**{lookup: value for lookup, value in lookups.items() if value is not None}).order_by("-id")
