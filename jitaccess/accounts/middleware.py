"""Session rules that hold on every request: the idle timeout and a group's TOTP requirement."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import urlencode
from django_otp.middleware import OTPMiddleware

from jitaccess.accounts.selectors import second_factor_missing
from jitaccess.accounts.signin_audit import LOGOUT_REASON_ATTRIBUTE

# When this session last made a request (seconds since the epoch).
LAST_SEEN_SESSION_KEY = "jit_last_seen"
# The user whose provider sign-in showed several factors, with JIT_OIDC_TRUST_IDP_MFA on.
PROVIDER_MFA_SESSION_KEY = "jit_provider_mfa"


class SecondFactorMiddleware(OTPMiddleware):
    """django-otp's middleware (``user.is_verified()``: did a code verify this session?), which
    also counts a trusted provider's multi-factor sign-in as the session's second factor."""

    def _verify_user_sync(self, request: HttpRequest, user: Any) -> Any:
        user = super()._verify_user_sync(request, user)
        if (
            settings.JIT_OIDC_ENABLED
            and settings.JIT_OIDC_TRUST_IDP_MFA
            and user.is_authenticated
            and request.session.get(PROVIDER_MFA_SESSION_KEY) == user.pk
        ):
            user.verified_by_provider = True
            user.is_verified = lambda: True
        return user


def idle_message(seconds: int) -> str:
    minutes = max(1, round(seconds / 60))
    return f"Your session ended after {minutes} minute{'' if minutes == 1 else 's'} without activity. Sign in again."


class SessionIdleTimeoutMiddleware:
    """Signs a session out after ``JIT_SESSION_IDLE_SECONDS`` without a request, on top of the
    absolute ``SESSION_COOKIE_AGE``. API calls made with the session count as activity; an API
    call that arrives too late goes on as anonymous (and is refused), a page goes to sign-in.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if not getattr(user, "is_authenticated", False):
            return self.get_response(request)
        idle = settings.JIT_SESSION_IDLE_SECONDS
        now = time.time()
        last_seen = request.session.get(LAST_SEEN_SESSION_KEY)
        if isinstance(last_seen, (int, float)) and now - last_seen > idle:
            setattr(request, LOGOUT_REASON_ATTRIBUTE, "idle")
            logout(request)  # audited as auth.logout with reason "idle" (signin_audit.py)
            if request.path.startswith("/api/"):
                return self.get_response(request)
            messages.info(request, idle_message(idle))
            # A form sent too late is not replayed after sign-in: its page may have changed.
            return redirect_to_login(request.get_full_path()) if request.method == "GET" else redirect("login")
        # Writing the session on every request would cost a database write each; a stamp this
        # coarse keeps the timeout within a few percent.
        if not isinstance(last_seen, (int, float)) or now - last_seen >= min(60, max(1, idle // 20)):
            request.session[LAST_SEEN_SESSION_KEY] = now
        return self.get_response(request)


class SecondFactorRequiredMiddleware:
    """A signed-in person whose groups require an authenticator app they have not set up may only
    set it up: every browser page leads to the enrolment page. The API has its own, JSON, answer
    (authentication.py and the token endpoint); probes and static files pass."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def _exempt(self, path: str) -> bool:
        exact = {
            reverse("account:two-factor"),
            reverse("account:reauth"),
            reverse("logout"),
            reverse("admin:logout"),
            "/healthz",
            "/readyz",
        }
        # /oidc/: re-authenticating through the provider comes before setting up the app.
        return path in exact or path.startswith(("/api/", "/oidc/", "/" + settings.STATIC_URL.lstrip("/")))

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if getattr(user, "is_authenticated", False) and not self._exempt(request.path) and second_factor_missing(user):
            target = reverse("account:two-factor")
            if request.method == "GET":
                target += "?" + urlencode({"next": request.get_full_path()})
            return redirect(target)
        return self.get_response(request)
