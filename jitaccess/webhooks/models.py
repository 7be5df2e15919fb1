"""Webhook endpoints and the deliveries of workflow events to them (docs/WEBHOOKS.md)."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from jitaccess.audit.models import AuditEvent
from keys.models import Secret


class WebhookEndpoint(models.Model):
    """A receiver of workflow events, chosen by a security admin.

    The signing key is a secret of the webhook key ring (``JIT_WEBHOOK_KEYRING``), sealed like
    every other secret: rotation, rewrap and the guard against destroying a key version still in
    use cover it with no extra code. It is shown once, when created or rotated.
    """

    name = models.CharField(max_length=100)
    url = models.URLField(max_length=2000)
    events = models.JSONField(default=list, help_text="The workflow events sent here (jitaccess/webhooks/events.py).")
    is_active = models.BooleanField(default=True)
    signing_secret = models.ForeignKey(Secret, on_delete=models.PROTECT, related_name="+", editable=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    deactivated_at = models.DateTimeField(null=True, blank=True)
    secret_rotated_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.name


class DeliveryStatus(models.TextChoices):
    PENDING = "pending"  # waiting for its first attempt or a retry
    DELIVERED = "delivered"  # a 2xx answer
    FAILED = "failed"  # every attempt failed; a security admin may send it again


class WebhookDelivery(models.Model):
    """One workflow event on its way to one endpoint.

    ``attempts`` counts attempts begun; a worker claims attempt n by moving it from n - 1 with a
    conditional UPDATE, so two tasks for the same attempt (a retry and a sweep) send it once.
    ``next_attempt_at`` is when the beat sweep may hand it over again: while an attempt is in
    flight it lies past that attempt's timeout.
    """

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.PROTECT, related_name="deliveries")
    event = models.ForeignKey(AuditEvent, on_delete=models.PROTECT, related_name="+")
    action = models.CharField(max_length=64)
    payload = models.JSONField()
    status = models.CharField(max_length=20, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()
    delivered_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["next_attempt_at"], condition=Q(status="pending"), name="webhookdelivery_pending_due"),
            models.Index(fields=["endpoint", "status", "-id"], name="webhookdelivery_by_endpoint"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "event"], name="webhookdelivery_once_per_event"),
        ]

    def __str__(self) -> str:
        return f"{self.action} → {self.endpoint} ({self.status})"
