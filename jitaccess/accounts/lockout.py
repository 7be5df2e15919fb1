"""Sign-in lockout after repeated failures, on django-axes (settings: ``AXES_*``; docs/SIGN_IN.md).

Every sign-in path calls ``authenticate()`` with the request (the pages, the admin, the token
endpoint, re-authentication), so axes sees each failure and refuses a locked-out name from that
address before the password is even checked. This module adapts axes to the product: the client
address is the one the API throttles use, unknown user names are kept only as keyed hashes, the
lockout is audited once, and the answer is a page (or JSON under /api/) saying how long to wait.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from axes.handlers.database import AxesDatabaseHandler
from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_cool_off
from axes.utils import reset
from django.db.models import Max
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from rest_framework.throttling import BaseThrottle

from jitaccess.accounts.services import lockout_record, username_for_records
from jitaccess.accounts.signin_audit import LOCKOUT_REFUSED_ATTRIBUTE


def client_address(request: HttpRequest) -> str | None:
    """The client's address as the API throttles see it: ``X-Forwarded-For`` counts only through
    the ``JIT_TRUSTED_PROXIES`` proxies, so a client cannot pick a fresh address per guess."""
    return BaseThrottle().get_ident(request) or None


def lockout_username(request: HttpRequest, credentials: dict[str, Any] | None = None) -> str | None:
    """The name axes stores and counts: an account's name as it is, any other only as a keyed hash
    (a password typed into the user-name field must not rest in the lockout table)."""
    if credentials:
        typed = credentials.get("username")
    else:
        data = getattr(request, "data", None) or request.POST
        typed = data.get("username")
    if not isinstance(typed, str) or not typed:
        return None
    # axes asks several times per attempt; one lookup per request is enough.
    cache = request.__dict__.setdefault("_jit_lockout_names", {})
    if typed not in cache:
        cache[typed] = username_for_records(typed)[0]
    return cache[typed]


class AuditedLockoutHandler(AxesDatabaseHandler):
    """axes' database handler, plus one ``auth.locked_out`` event when a lockout begins.

    With ``AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT`` off, axes' backend marks an attempt made
    during a lockout before this runs, so an attempt that ends with the mark and did not start
    with it is the one that crossed the limit.
    """

    def user_login_failed(self, sender: Any, credentials: dict, request: Any = None, **kwargs: Any) -> None:
        locked_before = bool(getattr(request, "axes_locked_out", False))
        if request is not None:
            setattr(request, LOCKOUT_REFUSED_ATTRIBUTE, locked_before)
        super().user_login_failed(sender, credentials, request, **kwargs)
        if request is not None and getattr(request, "axes_locked_out", False) and not locked_before:
            lockout_record(
                username=str((credentials or {}).get("username", "")),
                failures=getattr(request, "axes_failures_since_start", None),
            )


def lockout_remaining(request: HttpRequest, credentials: dict[str, Any] | None = None) -> timedelta:
    """How long the lockout that applies to this request has left to run."""
    cool_off = get_cool_off(request) or timedelta(0)
    latest = None
    for attempts in AxesProxyHandler.get_implementation().get_user_attempts(request, credentials):
        last = attempts.aggregate(last=Max("attempt_time"))["last"]
        if last is not None and (latest is None or last > latest):
            latest = last
    if latest is None:
        return cool_off
    return max(latest + cool_off - timezone.now(), timedelta(0))


LOCKED_OUT = (
    "Too many failed sign-in attempts for this account from your address. Sign-in is locked for "
    "{minutes} more minute{plural}: wait, then try again, or ask a security admin to unlock it."
)


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: dict[str, Any] | None = None
) -> HttpResponse:
    """axes' answer to a locked-out attempt: 429 with Retry-After, a page or (API) JSON."""
    remaining = lockout_remaining(request, credentials)
    seconds = max(1, math.ceil(remaining.total_seconds()))
    minutes = max(1, math.ceil(seconds / 60))
    message = LOCKED_OUT.format(minutes=minutes, plural="" if minutes == 1 else "s")
    if request.path.startswith("/api/"):
        response: HttpResponse = JsonResponse({"detail": message, "code": "locked_out"}, status=429)
    else:
        response = render(request, "account/locked_out.html", {"message": message, "minutes": minutes}, status=429)
    response["Retry-After"] = str(seconds)
    add_never_cache_headers(response)
    return response


def lockout_reset_after_success(request: HttpRequest, username: str) -> None:
    """Forget this name's failures from this address once it proved itself. axes does this on
    ``user_logged_in``; the token endpoint and re-authentication open no session, so they call it."""
    reset(ip=client_address(request), username=lockout_username(request, {"username": username}))
