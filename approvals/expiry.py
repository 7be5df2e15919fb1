"""Layers 2 and 3 of expiry (DESIGN.md §8). Layer 1, the use-time check, is in selectors.

- Precise tidy-up: a grant due within the horizon gets a Celery task with a short ETA at its
  ``expires_at``. ETAs stay under the horizon (a minute by default), far inside Redis's
  visibility timeout, so a delayed task is never redelivered in a loop.
- Safety net: a beat sweep expires every overdue grant, so nothing depends on a queued message
  surviving an outage. Both paths lock the row and check the state: whichever runs first flips
  the grant and writes the one audit event; the other does nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet

from approvals.models import AccessRequest, Grant, GrantCredential, GrantState, RequestState
from jitaccess import clock
from jitaccess.audit.services import audit_record
from jitaccess.enqueue import enqueue_after_commit

logger = logging.getLogger(__name__)

# A task handed to the broker but not run by then (lost with a restarted Redis, say) is handed
# over again by the scheduler; the sweep covers the gap meanwhile.
REENQUEUE_AFTER = timedelta(minutes=5)
SWEEP_BATCH = 500


def grant_expire_locked(grant: Grant, *, now: Any) -> None:
    """Flip a locked, overdue, active grant to expired and kill its credential."""
    grant.state = GrantState.EXPIRED
    grant.ended_at = grant.expires_at
    grant.end_reason = "expired"
    grant.save(update_fields=["state", "ended_at", "end_reason"])
    GrantCredential.objects.filter(grant=grant, revoked_at__isnull=True).update(revoked_at=now)
    lag_ms = int((now - grant.expires_at).total_seconds() * 1000)
    audit_record(
        "grant.expired",
        target_type="grant",
        target_id=grant.pk,
        grant_id=grant.pk,
        data={"expires_at": grant.expires_at.isoformat(), "lag_ms": lag_ms},
    )


def grant_expire(grant_id: int) -> float | None:
    """Expire one grant if it is active and due. Idempotent.

    Returns None when there is nothing (more) to do, or the seconds until the grant falls due
    when called early (a worker clock slightly ahead of the database's).
    """
    with transaction.atomic():
        grant = Grant.objects.select_for_update().filter(pk=grant_id).first()
        if grant is None or grant.state != GrantState.ACTIVE:
            return None
        now = clock.now()
        if now < grant.expires_at:
            return (grant.expires_at - now).total_seconds()
        grant_expire_locked(grant, now=now)
        return None


def request_expire_locked(request: AccessRequest, *, now: Any) -> None:
    """Flip a locked pending request whose TTL has passed to expired."""
    request.state = RequestState.EXPIRED
    request.decided_at = now
    request.open_stage_group = ""
    request.save(update_fields=["state", "decided_at", "open_stage_group"])
    audit_record(
        "request.expired",
        target_type="access_request",
        target_id=request.pk,
        data={"pending_expires_at": request.pending_expires_at.isoformat()},
    )


def _sweep(overdue: Callable[[Any], QuerySet], expire_locked: Callable[..., None]) -> int:
    """Expire overdue rows in batches, one transaction each. Rows another sweeper holds are
    skipped (``skip_locked``), so concurrent sweeps never expire a row twice."""
    total = 0
    while True:
        with transaction.atomic():
            now = clock.now()
            batch = list(overdue(now).select_for_update(skip_locked=True)[:SWEEP_BATCH])
            for row in batch:
                expire_locked(row, now=now)
        total += len(batch)
        if len(batch) < SWEEP_BATCH:
            return total


def expiry_sweep() -> dict[str, int]:
    """The safety net: expire every overdue grant and stale pending request."""
    grants = _sweep(
        lambda now: Grant.objects.filter(state=GrantState.ACTIVE, expires_at__lte=now).order_by("expires_at"),
        grant_expire_locked,
    )
    requests = _sweep(
        lambda now: AccessRequest.objects.filter(state=RequestState.PENDING, pending_expires_at__lte=now).order_by(
            "pending_expires_at"
        ),
        request_expire_locked,
    )
    if grants or requests:
        logger.info("expiry sweep: %s grants, %s requests expired", grants, requests)
    return {"grants": grants, "requests": requests}


def _enqueue_after_commit(grant_id: int, eta: Any) -> None:
    from approvals.tasks import expire_grant

    # Lost to a broker outage, the grant is still refused at expires_at (use-time check) and the
    # sweep expires it.
    enqueue_after_commit(
        expire_grant, args=[grant_id], eta=eta, what=f"expiry of grant {grant_id}; the sweep will expire it"
    )


def expiry_enqueue_if_due(grant: Grant) -> None:
    """Called inside the issuing transaction: a short grant gets its precise task at once."""
    now = clock.now()
    if grant.expires_at - now <= timedelta(seconds=settings.JIT_EXPIRY_HORIZON_SECONDS):
        grant.expiry_enqueued_at = now
        grant.save(update_fields=["expiry_enqueued_at"])
        _enqueue_after_commit(grant.pk, grant.expires_at)


def schedule_due_expiries() -> int:
    """Hand the grants that fall due within the horizon to the worker as short-ETA tasks."""
    with transaction.atomic():
        now = clock.now()
        horizon = now + timedelta(seconds=settings.JIT_EXPIRY_HORIZON_SECONDS)
        due = list(
            Grant.objects.select_for_update(skip_locked=True)
            .filter(state=GrantState.ACTIVE, expires_at__lte=horizon)
            .exclude(expiry_enqueued_at__gt=now - REENQUEUE_AFTER)
            .order_by("expires_at")[:SWEEP_BATCH]
        )
        for grant in due:
            grant.expiry_enqueued_at = now
            grant.save(update_fields=["expiry_enqueued_at"])
            _enqueue_after_commit(grant.pk, grant.expires_at)
    return len(due)
