from django.urls import path

from jitaccess.accounts import recovery_pages

app_name = "people"

urlpatterns = [
    path("", recovery_pages.people_page, name="list"),
]
