from django.urls import path

from approvals import pages

app_name = "approvals"

urlpatterns = [
    path("audit/requests/<int:pk>/", pages.request_timeline, name="request-timeline"),
    path("audit/grants/<int:pk>/", pages.grant_timeline, name="grant-timeline"),
    path("audit/grants/<int:pk>/evidence/", pages.grant_evidence, name="grant-evidence"),
    path("audit/grants/<int:pk>/evidence.json", pages.grant_evidence_download, name="grant-evidence-download"),
]
