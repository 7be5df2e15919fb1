from rest_framework.routers import SimpleRouter

from jitaccess.webhooks.api.views import WebhookDeliveryViewSet, WebhookEndpointViewSet

router = SimpleRouter()
router.register("webhooks/deliveries", WebhookDeliveryViewSet, basename="webhook-delivery")
router.register("webhooks", WebhookEndpointViewSet, basename="webhook")

urlpatterns = router.urls
