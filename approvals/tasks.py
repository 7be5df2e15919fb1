"""Thin Celery tasks: ids in, services do the work."""

from __future__ import annotations

from celery import shared_task

from approvals import expiry
from jitaccess.audit.context import audit_context

# Longer waits are left to the scheduler, which re-enqueues within the horizon.
_MAX_EARLY_WAIT = 120.0


@shared_task(bind=True, acks_late=True, ignore_result=True, max_retries=20)
def expire_grant(self, grant_id: int) -> None:  # type: ignore[no-untyped-def]
    with audit_context():
        wait = expiry.grant_expire(grant_id)
    if wait is not None and wait <= _MAX_EARLY_WAIT:
        raise self.retry(countdown=wait + 0.05)


@shared_task(ignore_result=True)
def schedule_due_expiries() -> int:
    with audit_context():
        return expiry.schedule_due_expiries()


@shared_task(ignore_result=True)
def expiry_sweep() -> dict[str, int]:
    with audit_context():
        return expiry.expiry_sweep()
