from django.urls import path

from approvals import policy_pages

app_name = "security"

urlpatterns = [
    path("entitlements/", policy_pages.entitlement_list, name="entitlements"),
    path("entitlements/new/", policy_pages.entitlement_create_page, name="entitlement-create"),
    path("entitlements/<int:pk>/", policy_pages.entitlement_edit_page, name="entitlement-edit"),
    path("grants/", policy_pages.grant_list, name="grants"),
    path("grants/<int:pk>/revoke/", policy_pages.grant_revoke_page, name="grant-revoke"),
]
