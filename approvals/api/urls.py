from django.urls import path
from rest_framework.routers import SimpleRouter

from approvals.api.views import (
    AccessRequestViewSet,
    EntitlementViewSet,
    GrantTimelineView,
    GrantViewSet,
    RequestTimelineView,
)

router = SimpleRouter()
router.register("entitlements", EntitlementViewSet, basename="entitlement")
router.register("requests", AccessRequestViewSet, basename="request")
router.register("grants", GrantViewSet, basename="grant")

urlpatterns = [
    *router.urls,
    path("audit/requests/<int:pk>/timeline/", RequestTimelineView.as_view(), name="audit-request-timeline"),
    path("audit/grants/<int:pk>/timeline/", GrantTimelineView.as_view(), name="audit-grant-timeline"),
]
