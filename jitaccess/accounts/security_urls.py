from django.urls import path

from jitaccess.accounts import service_token_pages

app_name = "service-tokens"

urlpatterns = [
    path("", service_token_pages.service_token_list, name="list"),
    path("new/", service_token_pages.service_token_create_page, name="create"),
    path("<int:pk>/revoke/", service_token_pages.service_token_revoke_page, name="revoke"),
]
