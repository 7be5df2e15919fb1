"""The datacenter admin's pages: their requests and grants, a new request, withdrawing, minting the
grant credential, revoking early, and revealing the secrets an active grant opens."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from approvals import selectors, services
from approvals.forms import AccessRequestForm, ReasonForm
from approvals.models import AccessRequest, Grant, GrantState
from approvals.pages import grant_summary, request_summary
from approvals.permissions import can_withdraw_request
from jitaccess import clock
from jitaccess.errors import DomainError
from jitaccess.web.access import person_page
from jitaccess.web.outcomes import object_or_404, refusal_for_person_raise, refusal_shown
from jitaccess.web.paging import CursorForm, keyset_page, page_links
from keys.reveal import secret_reveal
from keys.selectors import secrets_opened_by

REVEAL_HELP = "Recorded in the audit trail with the value's reveal."


def visible_request(request: HttpRequest, pk: int) -> AccessRequest:
    requests = (
        selectors.requests_visible_to(request.user).select_related("grant").prefetch_related("decisions__approver")
    )
    return object_or_404(requests, pk, "request")


def visible_grant(request: HttpRequest, pk: int) -> Grant:
    return object_or_404(selectors.grants_visible_to(request.user).select_related("request", "credential"), pk, "grant")


def held_grant(request: HttpRequest, pk: int) -> Grant:
    """A grant the person holds; anyone else's is not found here, whatever they may read."""
    grant = visible_grant(request, pk)
    if grant.user_id != request.user.pk:
        raise Http404("No such grant.")
    return grant


# --- the dashboard ------------------------------------------------------------------------------


@person_page("GET")
def dashboard(request: HttpRequest) -> HttpResponse:
    """Active grants first, with their countdown; then the person's requests, newest first."""
    paging = CursorForm(request.GET)
    if not paging.is_valid():
        return render(request, "approvals/dashboard.html", {"paging_problems": paging.problems()}, status=400)
    now = clock.now()
    own = AccessRequest.objects.filter(requester=request.user).select_related("entitlement", "grant")
    page = keyset_page(own, key="id", cursor=paging.cursor(), newest_first=True)
    rows = [
        {"request": r, "state": selectors.request_effective_state(r, at=now), "grant": getattr(r, "grant", None)}
        for r in page.rows
    ]
    return render(
        request,
        "approvals/dashboard.html",
        {
            "grants": list(selectors.grants_held_by(request.user, at=now)),
            "rows": rows,
            "links": page_links(request, page),
            "may_request": selectors.requestable_entitlements(request.user).exists(),
        },
    )


# --- requests -----------------------------------------------------------------------------------


@person_page("GET", "POST")
def request_create(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = AccessRequestForm(request.POST, user=request.user)
        status = 400
        if form.is_valid():
            try:
                created = services.request_submit(requester=request.user, **form.submission())
            except DomainError as error:
                status = refusal_shown(form, error, fields=AccessRequestForm.SERVICE_FIELDS)
            else:
                messages.success(request, f"Request #{created.pk} submitted; it waits for its first approval stage.")
                return redirect("approvals:request-detail", created.pk)
    else:
        form = AccessRequestForm(initial={"entitlement": request.GET.get("entitlement")}, user=request.user)
        status = 200
    entitlements = list(form.fields["entitlement"].queryset)
    return render(request, "approvals/request_form.html", {"form": form, "entitlements": entitlements}, status=status)


@person_page("GET")
def request_detail(request: HttpRequest, pk: int) -> HttpResponse:
    access_request = visible_request(request, pk)
    summary = request_summary(access_request, now=clock.now())
    awaiting_me = selectors.requests_awaiting(request.user).filter(pk=pk).exists()
    return render(
        request,
        "approvals/request_detail.html",
        {
            "summary": summary,
            "may_withdraw": summary.state == "pending" and can_withdraw_request(request.user, access_request),
            "awaiting_me": awaiting_me,
            "own_grant": summary.grant if summary.grant and summary.grant.user_id == request.user.pk else None,
        },
    )


@person_page("POST")
def request_withdraw(request: HttpRequest, pk: int) -> HttpResponse:
    access_request = visible_request(request, pk)
    try:
        services.request_withdraw(access_request, acting_user=request.user)
    except DomainError as error:
        refusal_for_person_raise(error)
        messages.error(request, error.detail)
    else:
        messages.success(request, f"Request #{pk} withdrawn.")
    return redirect("approvals:request-detail", pk)


# --- grants -------------------------------------------------------------------------------------


def _grant_page(
    request: HttpRequest,
    grant: Grant,
    *,
    status: int = 200,
    revoke_form: ReasonForm | None = None,
    reveal_forms: dict[int, ReasonForm] | None = None,
    minted: str | None = None,
) -> HttpResponse:
    now = clock.now()
    summary = grant_summary(grant, now=now)
    holder = grant.user_id == request.user.pk
    active = summary.state == GrantState.ACTIVE
    secrets = []
    if holder and active:
        reveal_forms = reveal_forms or {}
        for secret in secrets_opened_by(grant.security_group_id):
            form = reveal_forms.get(secret.pk) or ReasonForm(prefix=f"secret-{secret.pk}", help_text=REVEAL_HELP)
            secrets.append({"secret": secret, "form": form})
    return render(
        request,
        "approvals/grant_detail.html",
        {
            "summary": summary,
            "holder": holder,
            "active": active,
            "may_mint": holder and active and summary.credential is None,
            "may_revoke": holder and active,
            "revoke_form": revoke_form or ReasonForm(label="Why are you ending it early?"),
            "secrets": secrets,
            "minted": minted,
        },
        status=status,
    )


@person_page("GET")
def grant_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _grant_page(request, visible_grant(request, pk))


@person_page("POST")
def grant_credential(request: HttpRequest, pk: int) -> HttpResponse:
    """The credential is in this one response and nowhere else: not in the session, not in a
    redirect, and the response is marked never to be cached."""
    grant = visible_grant(request, pk)
    try:
        token, _ = services.grant_credential_mint(grant, acting_user=request.user)
    except DomainError as error:
        refusal_for_person_raise(error)
        messages.error(request, error.detail)
        return redirect("approvals:grant-detail", pk)
    return _grant_page(request, visible_grant(request, pk), minted=token)


@person_page("POST")
def grant_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    """The holder ends their own grant early. A security admin revokes someone else's on the
    active-grants page, which asks them to re-authenticate first."""
    grant = held_grant(request, pk)
    form = ReasonForm(request.POST, label="Why are you ending it early?")
    status = 400
    if form.is_valid():
        try:
            services.grant_revoke(grant, acting_user=request.user, reason=form.cleaned_data["reason"])
        except DomainError as error:
            status = refusal_shown(form, error)
        else:
            messages.success(request, f"Grant #{pk} revoked; its access and credential no longer work.")
            return redirect("approvals:grant-detail", pk)
    return _grant_page(request, visible_grant(request, pk), status=status, revoke_form=form)


@person_page("POST")
def secret_reveal_page(request: HttpRequest, pk: int, secret_pk: int) -> HttpResponse:
    """Reveal one secret the grant opens. The value is in this response only; the page hides it
    when the grant ends, and a reveal after that is refused (and audited) by ``secret_reveal``."""
    grant = held_grant(request, pk)
    secret = secrets_opened_by(grant.security_group_id).filter(pk=secret_pk).first()
    if secret is None:
        raise Http404("No such secret.")
    form = ReasonForm(request.POST, prefix=f"secret-{secret.pk}", help_text=REVEAL_HELP)
    if not form.is_valid():
        return _grant_page(request, grant, status=400, reveal_forms={secret.pk: form})
    try:
        revealed = secret_reveal(
            secret.pk, acting_user=request.user, reason=form.cleaned_data["reason"], page_grant_id=grant.pk
        )
    except DomainError as error:
        status = refusal_shown(form, error)
        return _grant_page(request, grant, status=status, reveal_forms={secret.pk: form})
    context: dict[str, Any] = {
        "grant": grant,
        "secret": secret,
        "value": revealed.value,
        "back": reverse("approvals:grant-detail", args=[grant.pk]),
    }
    return render(request, "approvals/reveal.html", context)
