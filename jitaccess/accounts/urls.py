from django.urls import path

from jitaccess.accounts import pages

app_name = "account"

urlpatterns = [
    path("", pages.account_home, name="home"),
    path("two-factor/", pages.two_factor, name="two-factor"),
    path("two-factor/replace/", pages.two_factor_replace, name="two-factor-replace"),
    path("two-factor/cancel/", pages.two_factor_cancel, name="two-factor-cancel"),
    path("two-factor/remove/", pages.two_factor_remove, name="two-factor-remove"),
    path("reauth/", pages.reauth, name="reauth"),
]
