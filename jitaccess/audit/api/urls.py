from django.urls import path

from jitaccess.audit.api.views import (
    AuditEventListView,
    AuditExportView,
    AuditVerifyView,
    ConfigChangeListView,
    ReportListView,
    ReportView,
)

urlpatterns = [
    path("events/", AuditEventListView.as_view(), name="audit-events"),
    path("export/", AuditExportView.as_view(), name="audit-export"),
    path("verify/", AuditVerifyView.as_view(), name="audit-verify"),
    path("changes/", ConfigChangeListView.as_view(), name="audit-changes"),
    path("reports/", ReportListView.as_view(), name="audit-reports"),
    path("reports/<slug:name>/", ReportView.as_view(), name="audit-report"),
]
