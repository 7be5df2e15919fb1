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
from jitaccess.roles import is_auditor

AUDITORS_ONLY = "Only auditors can browse the audit trail."


def signed_in(request: HttpRequest) -> bool:
    """A session that passed the sign-in, second factor included.

    A session of a device owner opened without the code (force_login, a password-only form) does
    not count, exactly as in the admin and the API.
    """
    user = request.user
    return user.is_authenticated and second_factor_satisfied(user)


def auditor_page(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Members of ``auditors`` only, and GET only: auditors read everything and change nothing
    (invariant 14). Anonymous visitors go to the sign-in page, anyone else gets the 403 page.

    HEAD is refused too: evidence packs and downloads are recorded as leaving the system, so
    only a request that receives the body may cause that record.
    """

    @wraps(view)
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not signed_in(request):
            return redirect_to_login(request.get_full_path())
        if not is_auditor(request.user):
            raise PermissionDenied(AUDITORS_ONLY)
        if request.method != "GET":
            return HttpResponseNotAllowed(["GET"])
        response = view(request, *args, **kwargs)
        # The trail is sensitive: no shared or back-button cache keeps a copy.
        add_never_cache_headers(response)
        return response

    return guarded
