from __future__ import annotations

import django_filters

from jitaccess.webhooks.models import DeliveryStatus, WebhookDelivery


class DeliveryFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=DeliveryStatus.choices)
    endpoint = django_filters.NumberFilter(field_name="endpoint_id", min_value=1)

    class Meta:
        model = WebhookDelivery
        fields = ["status", "endpoint"]
