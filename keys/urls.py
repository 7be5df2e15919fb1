from django.urls import path

from keys import pages

app_name = "keyrings"

urlpatterns = [
    path("", pages.keyring_list, name="list"),
    path("<int:pk>/", pages.keyring_detail, name="detail"),
    path("<int:pk>/rotate/", pages.keyring_rotate_page, name="rotate"),
]
