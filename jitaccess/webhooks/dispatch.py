"""Deliveries on their way: made inside the workflow's transaction, handed to the worker after it
commits, and handed over again by the beat sweep when a task was lost.

- ``deliveries_create`` runs inside ``audit_record``: the delivery rows commit or roll back with
  the action, so a rolled-back action sends nothing. The task is enqueued after commit; a broker
  outage is logged and the delivery made due at once, for the sweep.
- ``webhook_sweep`` claims due pending deliveries with ``skip_locked`` and moves their next
  attempt past the in-flight window in the same transaction, so two beat hosts never hand over
  the same delivery twice. A task that arrives twice anyway (a retry and a sweep) is harmless:
  the worker claims attempt n only by moving ``attempts`` from n - 1 (services.delivery_attempt).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings

from jitaccess import clock
from jitaccess.audit.models import AuditEvent
from jitaccess.enqueue import claim_in_batches, enqueue_after_commit
from jitaccess.webhooks.events import event_payload
from jitaccess.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint

# A retry due within this is handed to the broker with a countdown; a later one is left to the
# sweep, so no task waits in Redis past its visibility timeout (DESIGN.md §8).
MAX_COUNTDOWN_SECONDS = 120


def in_flight_window() -> timedelta:
    """How long an attempt handed to the worker keeps the sweep away: well past its timeout."""
    return timedelta(seconds=max(60, 2 * settings.JIT_WEBHOOK_TIMEOUT_SECONDS + 10))


def backoff_seconds(attempt: int) -> float:
    """The wait after failed attempt ``attempt`` (1-based): exponential, capped, with ±25 % jitter
    so that the deliveries of one outage do not all come back at the same second."""
    base = settings.JIT_WEBHOOK_BACKOFF_SECONDS * 2 ** min(attempt - 1, 30)
    delay = min(base, settings.JIT_WEBHOOK_BACKOFF_MAX_SECONDS)
    return delay * random.uniform(0.75, 1.25)  # noqa: S311 — jitter, not a secret


def deliveries_create(event: AuditEvent) -> int:
    """One delivery per active endpoint subscribed to the event's action; called by audit_record."""
    endpoints = [e for e in WebhookEndpoint.objects.filter(is_active=True) if event.action in e.events]
    if not endpoints:
        return 0
    now = clock.now()
    payload = event_payload(event)
    for endpoint in endpoints:
        delivery = WebhookDelivery.objects.create(
            endpoint=endpoint,
            event=event,
            action=event.action,
            payload=payload,
            created_at=now,
            next_attempt_at=now + in_flight_window(),
        )
        delivery_enqueue(delivery, attempt=1, claimed_until=delivery.next_attempt_at)
    return len(endpoints)


def delivery_enqueue(
    delivery: WebhookDelivery, *, attempt: int, claimed_until: datetime, countdown: float | None = None
) -> None:
    """After commit, hand attempt ``attempt`` to the worker; if the broker refuses, make it due now."""
    from jitaccess.webhooks.tasks import send_delivery

    enqueue_after_commit(
        send_delivery,
        args=[delivery.pk, attempt],
        countdown=countdown,
        what=f"webhook delivery {delivery.pk} (attempt {attempt}); the sweep will send it",
        on_failure=_due_now(delivery.pk, claimed_until),
    )


def _due_now(delivery_id: int, claimed_until: datetime) -> Callable[[], None]:
    # Compare-and-swap on the claim: a claim made since by a sweep or a worker is left alone.
    def undo() -> None:
        WebhookDelivery.objects.filter(
            pk=delivery_id, status=DeliveryStatus.PENDING, next_attempt_at=claimed_until
        ).update(next_attempt_at=clock.now())

    return undo


def webhook_sweep() -> int:
    """Hand every pending delivery whose next attempt is due to the worker, once."""

    def due(now: datetime) -> Any:
        return WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now).order_by(
            "next_attempt_at"
        )

    def claim(delivery: WebhookDelivery, now: datetime) -> None:
        delivery.next_attempt_at = now + in_flight_window()
        delivery.save(update_fields=["next_attempt_at"])
        delivery_enqueue(delivery, attempt=delivery.attempts + 1, claimed_until=delivery.next_attempt_at)

    return claim_in_batches(due, claim)
