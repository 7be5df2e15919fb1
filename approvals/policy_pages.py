"""The security admins' pages of the approvals app: entitlements with their approval stages, and
every active grant in the system, each revocable.

Writes go through approvals.policy_services and approvals.services; reads through the selectors.
Revoking a grant asks for a recent re-authentication first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET

from approvals import selectors, services
from approvals.models import Grant, GrantState, RequestState
from approvals.policy_forms import PolicyEditor, RevokeForm
from approvals.policy_services import entitlement_create, entitlement_update
from jitaccess import clock
from jitaccess.accounts.reauth import reauth_detour, reauth_draft_take, reauth_fresh
from jitaccess.errors import Conflict, InvalidInput, NotAllowed
from jitaccess.web.access import security_admin_page
from jitaccess.web.outcomes import object_or_404
from jitaccess.web.paging import CursorForm, keyset_page, page_links

# --- entitlements -------------------------------------------------------------------------------


@security_admin_page
@require_GET
def entitlement_list(request: HttpRequest) -> HttpResponse:
    return render(
        request, "security/entitlements.html", {"entitlements": selectors.entitlements_visible_to(request.user)}
    )


def _policy_page(request: HttpRequest, editor: PolicyEditor, *, status: int = 200) -> HttpResponse:
    entitlement = editor.entitlement
    in_flight = 0
    if entitlement is not None:
        pending = selectors.requests_in_state(entitlement.requests.all(), RequestState.PENDING, at=clock.now())
        in_flight = pending.count()
    return render(
        request,
        "security/entitlement_form.html",
        {"editor": editor, "entitlement": entitlement, "in_flight": in_flight},
        status=status,
    )


def _policy_saved(request: HttpRequest, editor: PolicyEditor) -> HttpResponse:
    """Validate and save the posted policy; re-show it with every problem beside its field.

    Saving asks for a fresh re-authentication, as rotating and revoking do: a policy decides who
    approves whom. What was typed survives the detour (``reauth_detour``)."""
    if not editor.is_valid():
        return _policy_page(request, editor, status=400)
    try:
        if editor.entitlement is None:
            entitlement = entitlement_create(
                slug=editor.slug(), policy=editor.policy(), stages=editor.stage_specs(), acting_user=request.user
            )
            messages.success(request, f"Entitlement {entitlement.slug} created.")
        else:
            entitlement = entitlement_update(
                editor.entitlement, policy=editor.policy(), stages=editor.stage_specs(), acting_user=request.user
            )
            messages.success(
                request, f"Entitlement {entitlement.slug} saved. Requests already submitted keep their policy."
            )
    except NotAllowed as exc:
        raise PermissionDenied(exc.detail) from None
    except InvalidInput as exc:
        editor.refused(exc)
        return _policy_page(request, editor, status=400)
    return redirect("security:entitlements")


@security_admin_page
def entitlement_create_page(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        if not reauth_fresh(request):
            return reauth_detour(request)
        return _policy_saved(request, PolicyEditor(request.POST))
    return _policy_page(request, PolicyEditor(reauth_draft_take(request)))


@security_admin_page
def entitlement_edit_page(request: HttpRequest, pk: int) -> HttpResponse:
    entitlement = object_or_404(selectors.entitlements_visible_to(request.user), pk, "entitlement")
    if request.method == "POST":
        if not reauth_fresh(request):
            return reauth_detour(request)
        return _policy_saved(request, PolicyEditor(request.POST, entitlement=entitlement))
    # Back from re-authenticating, the form shows what was typed before, not the saved policy.
    return _policy_page(request, PolicyEditor(reauth_draft_take(request), entitlement=entitlement))


# --- active grants ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ActiveGrantRow:
    grant: Grant
    seconds_left: int
    credential_minted: bool


def _active_grants(user: Any, *, now: datetime) -> QuerySet[Grant]:
    return selectors.grants_in_state(
        selectors.grants_visible_to(user).select_related("credential"), GrantState.ACTIVE, at=now
    )


@security_admin_page
@require_GET
def grant_list(request: HttpRequest) -> HttpResponse:
    paging = CursorForm(request.GET)
    if not paging.is_valid():
        return render(request, "security/grants.html", {"paging_problems": paging.problems()}, status=400)
    now = clock.now()
    page = keyset_page(_active_grants(request.user, now=now), key="id", cursor=paging.cursor(), newest_first=True)
    rows = [ActiveGrantRow(grant, _seconds_left(grant, now), hasattr(grant, "credential")) for grant in page.rows]
    return render(
        request,
        "security/grants.html",
        {"rows": rows, "links": page_links(request, page)},
    )


def _revoke_page(request: HttpRequest, grant: Grant, form: RevokeForm, *, status: int = 200) -> HttpResponse:
    now = clock.now()
    return render(
        request,
        "security/grant_revoke.html",
        {
            "grant": grant,
            "state": selectors.grant_effective_state(grant, at=now),
            "seconds_left": _seconds_left(grant, now),
            "credential_minted": hasattr(grant, "credential"),
            "form": form,
        },
        status=status,
    )


@security_admin_page
def grant_revoke_page(request: HttpRequest, pk: int) -> HttpResponse:
    """GET: the grant and the reason form. POST: revoke it, after a recent re-authentication."""
    grant = object_or_404(selectors.grants_visible_to(request.user).select_related("credential"), pk, "grant")
    if request.method != "POST":
        # Back from re-authenticating, the reason typed before the detour is in the form again.
        draft = reauth_draft_take(request)
        return _revoke_page(request, grant, RevokeForm(draft) if draft is not None else RevokeForm())
    if not reauth_fresh(request):
        return reauth_detour(request)
    form = RevokeForm(request.POST)
    if not form.is_valid():
        return _revoke_page(request, grant, form, status=400)
    was = grant.state
    try:
        revoked = services.grant_revoke(grant, acting_user=request.user, reason=form.cleaned_data["reason"])
    except NotAllowed as exc:
        raise PermissionDenied(exc.detail) from None
    except Conflict:
        # Expired (or ended) between the page and the click: the outcome the admin wanted, not an error.
        grant.refresh_from_db()
        messages.warning(
            request,
            f"Grant {grant.pk} of {grant.user.get_username()} had already {grant.state} "
            f"at {_when(grant.ended_at or grant.expires_at)}; there was nothing left to revoke.",
        )
        return redirect("security:grants")
    if was == GrantState.REVOKED or revoked.ended_by_id != request.user.pk:
        messages.info(
            request,
            f"Grant {revoked.pk} was already revoked by "
            f"{revoked.ended_by.get_username() if revoked.ended_by else 'someone else'}.",
        )
    else:
        messages.success(
            request,
            f"Grant {revoked.pk} of {revoked.user.get_username()} revoked; its credential no longer works.",
        )
    return redirect(reverse("security:grants"))


def _seconds_left(grant: Grant, now: datetime) -> int:
    return max(0, int((grant.expires_at - now).total_seconds()))


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
