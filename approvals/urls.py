from django.urls import path

from approvals import approver_pages, pages, requester_pages

app_name = "approvals"

urlpatterns = [
    # The datacenter admin's pages.
    path("access/", requester_pages.dashboard, name="dashboard"),
    path("requests/new/", requester_pages.request_create, name="request-create"),
    path("requests/<int:pk>/", requester_pages.request_detail, name="request-detail"),
    path("requests/<int:pk>/withdraw/", requester_pages.request_withdraw, name="request-withdraw"),
    path("grants/<int:pk>/", requester_pages.grant_detail, name="grant-detail"),
    path("grants/<int:pk>/credential/", requester_pages.grant_credential, name="grant-credential"),
    path("grants/<int:pk>/revoke/", requester_pages.grant_revoke, name="grant-revoke"),
    path(
        "grants/<int:pk>/secrets/<int:secret_pk>/reveal/",
        requester_pages.secret_reveal_page,
        name="secret-reveal",
    ),
    # The legal approver's pages.
    path("approvals/", approver_pages.inbox, name="inbox"),
    path("approvals/decided/", approver_pages.decisions, name="decisions"),
    path("approvals/<int:pk>/", approver_pages.decide, name="decide"),
    # The auditors' pages over the workflow.
    path("audit/requests/<int:pk>/", pages.request_timeline, name="request-timeline"),
    path("audit/grants/<int:pk>/", pages.grant_timeline, name="grant-timeline"),
    path("audit/grants/<int:pk>/evidence/", pages.grant_evidence, name="grant-evidence"),
    path("audit/grants/<int:pk>/evidence.json", pages.grant_evidence_download, name="grant-evidence-download"),
]
