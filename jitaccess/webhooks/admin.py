from django.contrib import admin

from jitaccess.admin_access import ReadOnlyRecord
from jitaccess.webhooks.models import WebhookDelivery, WebhookEndpoint


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(ReadOnlyRecord):
    """Read-only: endpoints are managed on the security admins' pages and API (audited there)."""

    list_display = ("name", "url", "is_active", "created_at", "created_by")
    list_filter = ("is_active",)
    exclude = ("signing_secret",)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyRecord):
    list_display = ("action", "endpoint", "status", "attempts", "last_status_code", "created_at")
    list_filter = ("status",)
    list_select_related = ("endpoint",)
