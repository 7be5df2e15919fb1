from rest_framework.routers import SimpleRouter

from keys.api.views import KeyRingViewSet, SecretViewSet

router = SimpleRouter()
router.register("keyrings", KeyRingViewSet, basename="keyring")
router.register("secrets", SecretViewSet, basename="secret")

urlpatterns = router.urls
