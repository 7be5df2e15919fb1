"""Single sign-on URLs, included under /oidc/ only when JIT_OIDC_ENABLED is on."""

from django.urls import path

from jitaccess.accounts import oidc_views

urlpatterns = [
    # The names mozilla-django-oidc reverses (the callback is the redirect URI at the provider).
    path("authenticate/", oidc_views.SignInStartView.as_view(), name="oidc_authentication_init"),
    path("callback/", oidc_views.CallbackView.as_view(), name="oidc_authentication_callback"),
    path("reauth/", oidc_views.ReauthStartView.as_view(), name="oidc-reauth"),
    path("code/", oidc_views.code_step, name="oidc-code"),
]
