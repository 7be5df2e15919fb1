"""The security admins' pages for service-account API tokens: the list (with created, expires,
last used and revoked), a form to create one, and revoking.

Creating and revoking ask for a recent re-authentication first; a new token is shown on the page
that answers the creating POST and never again. Writes go through jitaccess.accounts.services.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET

from jitaccess import clock
from jitaccess.accounts.forms import ServiceTokenForm
from jitaccess.accounts.models import ServiceToken
from jitaccess.accounts.reauth import reauth_detour, reauth_draft_take, reauth_fresh, reauth_url
from jitaccess.accounts.selectors import service_token_state, service_tokens_visible_to
from jitaccess.accounts.services import service_token_create, service_token_revoke
from jitaccess.errors import InvalidInput, NotAllowed
from jitaccess.web.access import security_admin_page
from jitaccess.web.outcomes import object_or_404
from jitaccess.web.paging import CursorForm, keyset_page, page_links


@dataclass(frozen=True)
class TokenRow:
    token: ServiceToken
    state: str


@security_admin_page
@require_GET
def service_token_list(request: HttpRequest) -> HttpResponse:
    paging = CursorForm(request.GET)
    if not paging.is_valid():
        return render(request, "security/service_tokens.html", {"paging_problems": paging.problems()}, status=400)
    now = clock.now()
    page = keyset_page(service_tokens_visible_to(request.user), key="id", cursor=paging.cursor(), newest_first=True)
    rows = [TokenRow(token, service_token_state(token, at=now)) for token in page.rows]
    return render(request, "security/service_tokens.html", {"rows": rows, "links": page_links(request, page)})


def _create_page(request: HttpRequest, form: ServiceTokenForm, *, status: int = 200) -> HttpResponse:
    return render(request, "security/service_token_form.html", {"form": form}, status=status)


@security_admin_page
def service_token_create_page(request: HttpRequest) -> HttpResponse:
    """GET: the form. POST: create the token after a recent re-authentication, and show it once."""
    if request.method != "POST":
        return _create_page(request, ServiceTokenForm(reauth_draft_take(request)))
    if not reauth_fresh(request):
        return reauth_detour(request)  # what was typed comes back with the form
    form = ServiceTokenForm(request.POST)
    if not form.is_valid():
        return _create_page(request, form, status=400)
    data = form.cleaned_data
    try:
        token, record = service_token_create(
            account=data["account"],
            name=data["name"],
            scopes=data["scopes"],
            days=data["days"],
            acting_user=request.user,
        )
    except NotAllowed as exc:
        raise PermissionDenied(exc.detail) from None
    except InvalidInput as exc:
        form.add_error(exc.field if exc.field in form.fields else None, exc.detail)
        return _create_page(request, form, status=400)
    # Rendered in answer to the POST, never behind a redirect: the token exists on this page only
    # (the page guard marks it never-cache).
    return render(request, "security/service_token_created.html", {"token": token, "record": record})


@security_admin_page
def service_token_revoke_page(request: HttpRequest, pk: int) -> HttpResponse:
    """GET: what revoking ends. POST: revoke it, after a recent re-authentication."""
    token = object_or_404(service_tokens_visible_to(request.user), pk, "service token")
    if request.method != "POST":
        state = service_token_state(token, at=clock.now())
        return render(request, "security/service_token_revoke.html", {"token": token, "state": state})
    if not reauth_fresh(request):
        return redirect(reauth_url(request))
    was_revoked = token.revoked_at is not None
    try:
        token = service_token_revoke(token, acting_user=request.user)
    except NotAllowed as exc:
        raise PermissionDenied(exc.detail) from None
    if was_revoked or token.revoked_by_id != request.user.pk:
        by = token.revoked_by.get_username() if token.revoked_by else "someone else"
        messages.info(request, f"Token {token.prefix}… was already revoked by {by}.")
    else:
        messages.success(
            request, f"Token {token.prefix}… of {token.account.get_username()} revoked; it no longer works."
        )
    return redirect("service-tokens:list")
