"""Re-authentication before sensitive actions (a legal approver's decision, above all).

A page that needs a fresh proof of presence asks ``reauth_fresh(request)`` and, when it is not,
sends the person to ``reauth_url(request)``: the re-authentication page takes the password (and
the authenticator code of a user who has one) and comes back to the page it was sent from.
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.signals import user_login_failed
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import urlencode
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.exceptions import PermissionDenied

from jitaccess.accounts.authentication import SecondFactorSessionAuthentication
from jitaccess.accounts.lockout import lockout_reset_after_success
from jitaccess.accounts.services import reauth_failed_record, reauth_record, totp_code_problem
from jitaccess.accounts.signin_audit import REAUTH_ATTRIBUTE, refused_by_lockout

# The session holds who re-authenticated and when (seconds since the epoch).
REAUTH_SESSION_KEY = "jit_reauth"
# What a POST carried when it was sent to re-authenticate first.
DRAFT_SESSION_KEY = "jit_reauth_draft"


def reauth_fresh(request: HttpRequest) -> bool:
    """True when this session's user re-authenticated within ``JIT_REAUTH_SECONDS``."""
    user = getattr(request, "user", None)
    if not getattr(user, "is_authenticated", False):
        return False
    stamp: Any = request.session.get(REAUTH_SESSION_KEY)
    if not isinstance(stamp, dict) or stamp.get("user") != user.pk:
        return False
    at = stamp.get("at")
    if not isinstance(at, (int, float)):
        return False
    age = time.time() - at
    # A stamp from the future (a host clock stepped back) is not trusted either.
    return 0 <= age <= settings.JIT_REAUTH_SECONDS


def reauth_url(request: HttpRequest) -> str:
    """The re-authentication page, returning to the page being shown now."""
    return f"{reverse('account:reauth')}?{urlencode({'next': request.get_full_path()})}"


def reauth_mark(request: HttpRequest) -> None:
    """This session's person proved who they are just now (a re-authentication, or a full
    sign-in with password and code)."""
    request.session[REAUTH_SESSION_KEY] = {"user": request.user.pk, "at": time.time()}


def reauth_detour(request: HttpRequest) -> HttpResponse:
    """Send the person to re-authenticate, keeping what this POST carried (but its CSRF token)
    for the page it came from: back there, ``reauth_draft_take`` hands it over, so nothing has to
    be typed again. One draft at a time, kept in the server-side session."""
    draft = {name: values for name, values in request.POST.lists() if name != "csrfmiddlewaretoken"}
    request.session[DRAFT_SESSION_KEY] = {"path": request.path, "data": draft}
    return redirect(reauth_url(request))


def reauth_draft_take(request: HttpRequest) -> QueryDict | None:
    """The draft kept for this page by ``reauth_detour``, once; None when there is none."""
    draft = request.session.get(DRAFT_SESSION_KEY)
    if not isinstance(draft, dict) or draft.get("path") != request.path:
        return None
    del request.session[DRAFT_SESSION_KEY]
    data = QueryDict(mutable=True)
    for name, values in draft.get("data", {}).items():
        data.setlist(name, values)
    return data


def reauth_required_for_session(request: Any) -> None:
    """The API's counterpart: a change made with a browser session (cookie + CSRF token) needs the
    same fresh re-authentication as the page for it. A bearer token is not a browser session: it
    was issued for a password (and code) and is revoked or expires on its own."""
    if isinstance(request.successful_authenticator, SecondFactorSessionAuthentication) and not reauth_fresh(
        request._request
    ):
        raise PermissionDenied(
            "Confirm who you are first: re-authenticate at /account/reauth/ (valid "
            f"{settings.JIT_REAUTH_SECONDS // 60} minutes), or use a personal API token."
        )


def reauthenticate(request: HttpRequest, *, password: str, code: str) -> tuple[str, str] | None:
    """Check the signed-in person's password (and code, if they have an authenticator) again.

    Returns None on success, having stamped the session; otherwise the field at fault and what to
    say beside it. Every failure is audited (``auth.reauth_failed``) and counts toward the sign-in
    lockout like a failed sign-in; once locked, axes answers with its lockout page instead.
    """
    user = request.user
    username = user.get_username()
    # The sign-in receiver leaves these failures to this function (one event, not two).
    setattr(request, REAUTH_ATTRIBUTE, True)
    checked = authenticate(request, username=username, password=password)
    if checked is None or checked.pk != user.pk:
        reauth_failed_record(user=user, reason="locked_out" if refused_by_lockout(request) else "password")
        return "password", "That password is not right."
    devices = list(TOTPDevice.objects.filter(user=user, confirmed=True))
    problem = totp_code_problem(devices, code) if devices else None
    if problem is not None:
        reauth_failed_record(user=user, reason="second_factor")
        # A wrong code counts toward the lockout as a wrong password does.
        user_login_failed.send(sender=__name__, credentials={"username": username}, request=request)
        return "code", problem
    reauth_mark(request)
    reauth_record(user=user, second_factor=bool(devices))
    lockout_reset_after_success(request, username)
    return None
