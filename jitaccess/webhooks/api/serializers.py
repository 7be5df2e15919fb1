from __future__ import annotations

from rest_framework import serializers

from jitaccess.serializers import StrictInputSerializer
from jitaccess.webhooks.events import WEBHOOK_EVENTS
from jitaccess.webhooks.models import DeliveryStatus


class WebhookEndpointSerializer(serializers.Serializer):
    """An endpoint as listed: never its signing secret."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    url = serializers.CharField()
    events = serializers.ListField(child=serializers.ChoiceField(choices=WEBHOOK_EVENTS))
    is_active = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    created_by = serializers.CharField(source="created_by.username")
    updated_at = serializers.DateTimeField()
    deactivated_at = serializers.DateTimeField(allow_null=True)
    secret_rotated_at = serializers.DateTimeField(allow_null=True)
    failed_deliveries = serializers.IntegerField(source="failed_count", help_text="Deliveries that gave up.")
    pending_deliveries = serializers.IntegerField(source="pending_count")


class WebhookEndpointWriteSerializer(StrictInputSerializer):
    name = serializers.CharField(max_length=100)
    url = serializers.CharField(max_length=2000, help_text="https only, unless JIT_WEBHOOK_ALLOW_HTTP is set.")
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=WEBHOOK_EVENTS), allow_empty=False, max_length=len(WEBHOOK_EVENTS)
    )


class WebhookEndpointCreatedSerializer(WebhookEndpointSerializer):
    signing_secret = serializers.CharField(help_text="Shown only in this answer; the server keeps it sealed.")


class WebhookDeliverySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    delivery_id = serializers.UUIDField(source="uuid", help_text="Sent as X-Jitaccess-Delivery.")
    endpoint = serializers.IntegerField(source="endpoint_id")
    event = serializers.CharField(source="action")
    audit_seq = serializers.IntegerField(source="payload.audit_seq")
    status = serializers.ChoiceField(choices=DeliveryStatus.values)
    attempts = serializers.IntegerField()
    last_status_code = serializers.IntegerField(allow_null=True)
    last_error = serializers.CharField(help_text="Why the last attempt failed, with at most a short excerpt.")
    last_attempt_at = serializers.DateTimeField(allow_null=True)
    next_attempt_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    delivered_at = serializers.DateTimeField(allow_null=True)
    failed_at = serializers.DateTimeField(allow_null=True)
