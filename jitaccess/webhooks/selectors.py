"""Reads of webhook endpoints and deliveries, scoped to the caller: security admins see them all."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Q, QuerySet

from jitaccess.roles import is_security_admin
from jitaccess.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint


def endpoints_visible_to(user: Any) -> QuerySet[WebhookEndpoint]:
    qs = WebhookEndpoint.objects.select_related("created_by").annotate(
        failed_count=Count("deliveries", filter=Q(deliveries__status=DeliveryStatus.FAILED)),
        pending_count=Count("deliveries", filter=Q(deliveries__status=DeliveryStatus.PENDING)),
    )
    return qs if is_security_admin(user) else qs.none()


def deliveries_visible_to(user: Any) -> QuerySet[WebhookDelivery]:
    qs = WebhookDelivery.objects.select_related("endpoint")
    return qs if is_security_admin(user) else qs.none()


def failed_deliveries_count(user: Any) -> int:
    """Failed deliveries of endpoints still in use: the number the security admins' header shows."""
    return deliveries_visible_to(user).filter(status=DeliveryStatus.FAILED, endpoint__is_active=True).count()
