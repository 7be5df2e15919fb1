from django.urls import path

from jitaccess.webhooks import pages

app_name = "webhooks"

urlpatterns = [
    path("", pages.webhook_list, name="list"),
    path("new/", pages.webhook_create_page, name="create"),
    path("<int:pk>/", pages.webhook_detail, name="detail"),
    path("<int:pk>/rotate-secret/", pages.webhook_rotate_page, name="rotate"),
    path("<int:pk>/deactivate/", pages.webhook_deactivate_page, name="deactivate"),
    path("deliveries/<int:pk>/redeliver/", pages.delivery_redeliver_page, name="redeliver"),
]
