from rest_framework.routers import SimpleRouter

from approvals.api.views import AccessRequestViewSet, EntitlementViewSet, GrantViewSet

router = SimpleRouter()
router.register("entitlements", EntitlementViewSet, basename="entitlement")
router.register("requests", AccessRequestViewSet, basename="request")
router.register("grants", GrantViewSet, basename="grant")

urlpatterns = router.urls
