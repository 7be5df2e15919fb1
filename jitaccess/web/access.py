"""Who may open a browser page: the same roles as the API, with answers a browser understands."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.utils.cache import add_never_cache_headers

from jitaccess.accounts.permissions import second_factor_satisfied
from jitaccess.roles import is_auditor, is_security_admin

AUDITORS_ONLY = "Only auditors can browse the audit trail."


def signed_in(request: HttpRequest) -> bool:
    """A session that passed the sign-in, second factor included.

    A session of a device owner opened without the code (force_login, a password-only form) does
    not count, exactly as in the admin and the API.
    """
    user = request.user
    return user.is_authenticated and second_factor_satisfied(user)


def _guarded(
    view: Callable[..., HttpResponse],
    *,
    methods: list[str],
    allowed: Callable[[Any], bool] | None = None,
    refusal: str = "",
) -> Callable[..., HttpResponse]:
    """The one guard of every page: anonymous visitors go to the sign-in page, a person outside
    the page's role gets the 403 page saying ``refusal``, other methods get 405, and the answer is
    never cached (no shared or back-button cache keeps a copy of these pages)."""

    @wraps(view)
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not signed_in(request):
            return redirect_to_login(request.get_full_path())
        if allowed is not None and not allowed(request.user):
            raise PermissionDenied(refusal)
        if request.method not in methods:
            return HttpResponseNotAllowed(methods)
        response = view(request, *args, **kwargs)
        add_never_cache_headers(response)
        return response

    return guarded


def auditor_page(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Members of ``auditors`` only, and GET only: auditors read everything and change nothing
    (invariant 14).

    HEAD is refused too: evidence packs and downloads are recorded as leaving the system, so
    only a request that receives the body may cause that record.
    """
    return _guarded(view, methods=["GET"], allowed=is_auditor, refusal=AUDITORS_ONLY)


SECURITY_ADMINS_ONLY = "Only security admins can manage entitlements, key rings and grants."


def security_admin_page(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Members of ``security-admins`` only, with GET and POST: they change configuration, rotate
    keys and revoke grants here. The view itself still refuses the methods it does not take."""
    return _guarded(view, methods=["GET", "POST"], allowed=is_security_admin, refusal=SECURITY_ADMINS_ONLY)


def person_page(*methods: str) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """A page for any signed-in person; what they may do on it is the services' question (a
    refusal there becomes the 403 page). Only ``methods`` are answered: these pages show one
    person's requests, grants and, once, a revealed value."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        return _guarded(view, methods=list(methods))

    return decorate
