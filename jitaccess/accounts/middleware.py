"""Session rules that hold on every request: the idle timeout and a group's TOTP requirement."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import urlencode

from jitaccess.accounts.selectors import second_factor_missing
from jitaccess.accounts.signin_audit import LOGOUT_REASON_ATTRIBUTE

# When this session last made a request (seconds since the epoch).
LAST_SEEN_SESSION_KEY = "jit_last_seen"


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
        return path in exact or path.startswith(("/api/", "/" + settings.STATIC_URL.lstrip("/")))

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if getattr(user, "is_authenticated", False) and not self._exempt(request.path) and second_factor_missing(user):
            target = reverse("account:two-factor")
            if request.method == "GET":
                target += "?" + urlencode({"next": request.get_full_path()})
            return redirect(target)
        return self.get_response(request)
