"""Thin Celery tasks of the webhooks: ids in, services do the work.

Sending is acknowledged on receipt, like mail: a worker lost mid-request leaves the attempt
claimed, and the sweep hands the delivery over again once the in-flight window has passed.
"""

from __future__ import annotations

from celery import shared_task

from jitaccess.audit.context import audit_context
from jitaccess.webhooks import dispatch, services


@shared_task(ignore_result=True, acks_late=False)
def send_delivery(delivery_id: int, attempt: int) -> str | None:
    with audit_context():
        return services.delivery_attempt(delivery_id, attempt)


@shared_task(ignore_result=True)
def webhook_sweep() -> int:
    return dispatch.webhook_sweep()
