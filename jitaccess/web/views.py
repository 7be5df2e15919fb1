"""The home page and the sign-in page (sign-out is Django's view, see urls.py)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.views import LoginView, redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_safe

from approvals.selectors import approver_of_any_stage, grants_held_by, requests_awaiting
from jitaccess import clock
from jitaccess.roles import DATACENTER_ADMINS, group_names, is_auditor, is_security_admin
from jitaccess.web.access import signed_in
from jitaccess.web.forms import SignInForm


class SignInView(LoginView):
    """Django's sign-in with the password + TOTP form, and the single sign-on button when it is on."""

    authentication_form = SignInForm

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["sso_provider"] = settings.JIT_OIDC_PROVIDER_NAME if settings.JIT_OIDC_ENABLED else ""
        return context


@require_safe
def home(request: HttpRequest) -> HttpResponse:
    """Auditors go straight to the trail; everyone else learns where their work is done."""
    if not signed_in(request):
        return redirect_to_login(request.get_full_path())
    user = request.user
    if is_auditor(user):
        return redirect("audit:events")
    groups = group_names(user)
    now = clock.now()
    return render(
        request,
        "home.html",
        {
            "is_requester": DATACENTER_ADMINS in groups,
            "may_approve": approver_of_any_stage(user),
            "is_security_admin": is_security_admin(user),
            "is_service_account": user.is_service_account,
            "active_grants": grants_held_by(user, at=now).count(),
            "awaiting": requests_awaiting(user).count(),
        },
    )
