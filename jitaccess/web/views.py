"""The home page (sign-in and sign-out are Django's views, see urls.py)."""

from __future__ import annotations

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_safe

from approvals.selectors import approver_of_any_stage, grants_held_by, requests_awaiting
from jitaccess import clock
from jitaccess.roles import DATACENTER_ADMINS, group_names, is_auditor, is_security_admin
from jitaccess.web.access import signed_in


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
