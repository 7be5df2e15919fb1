"""Thin Celery tasks: ids in, services do the work."""

from __future__ import annotations

from celery import shared_task

from approvals import expiry, notifications
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


# --- email notifications (approvals/notifications.py) ---
# Mail tasks are acknowledged on receipt: a worker lost mid-send drops a message rather than
# sending it twice. Relay and network errors are retried with backoff instead.


@shared_task(ignore_result=True, acks_late=False)
def notify(kinds: list[str], object_id: int, stage: int | None = None) -> int:
    """Fan out: one send task per recipient, so a failure retries that recipient only."""
    sent = 0
    for kind in kinds:
        for user_id in notifications.recipients_of(kind, object_id, stage):
            send_notification.delay(kind, object_id, user_id, stage)
            sent += 1
    return sent


@shared_task(
    ignore_result=True,
    acks_late=False,
    autoretry_for=notifications.SEND_ERRORS,
    retry_backoff=30,
    retry_backoff_max=600,
    max_retries=5,
)
def send_notification(kind: str, object_id: int, user_id: int, stage: int | None = None) -> bool:
    return notifications.deliver(kind, object_id, user_id, stage)


@shared_task(ignore_result=True)
def notify_expiry_warnings() -> int:
    return notifications.expiry_warnings_claim()


@shared_task(ignore_result=True)
def notify_stage_deadlines() -> int:
    return notifications.stage_deadlines_claim()
