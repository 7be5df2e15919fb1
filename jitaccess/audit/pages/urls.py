from django.urls import path

from jitaccess.audit.pages import views

app_name = "audit"

urlpatterns = [
    path("", views.event_list, name="events"),
    path("events/<int:seq>/", views.event_detail, name="event"),
    path("verify/", views.verification, name="verify"),
    path("reports/", views.report_list, name="reports"),
    path("reports/<slug:name>/", views.report_detail, name="report"),
    path("changes/", views.change_list, name="changes"),
]
