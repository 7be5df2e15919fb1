from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "jitaccess.webhooks"
    label = "webhooks"
    verbose_name = "Webhooks"
