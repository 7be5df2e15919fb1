from django.contrib.auth import views as auth_views
from django.urls import path

from jitaccess.web import views

urlpatterns = [
    path("", views.home, name="home"),
    # The admin's password + TOTP sign-in; sign-ins and failures are audited by the auth signals.
    path("login/", views.SignInView.as_view(), name="login"),
    # Django's LogoutView takes POST only, so a link on another site cannot sign anyone out.
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
]
