from rest_framework.routers import SimpleRouter

from jitaccess.accounts.api.views import ServiceTokenViewSet

router = SimpleRouter()
router.register("service-tokens", ServiceTokenViewSet, basename="service-token")

urlpatterns = router.urls
