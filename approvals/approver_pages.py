"""The legal approver's pages: the inbox of requests awaiting their stage, the decision page with
the digest they sign (after re-authenticating), and their past decisions."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django_otp import user_has_device

from approvals import selectors, services
from approvals.forms import DecisionForm
from approvals.models import DecisionKind
from approvals.pages import request_summary
from approvals.requester_pages import visible_request
from jitaccess import clock
from jitaccess.accounts.reauth import reauth_detour, reauth_draft_take, reauth_fresh
from jitaccess.errors import DomainError, NotAllowed
from jitaccess.web.access import person_page
from jitaccess.web.outcomes import refusal_shown
from jitaccess.web.paging import CursorForm, keyset_page, page_links


@person_page("GET")
def inbox(request: HttpRequest) -> HttpResponse:
    """Requests whose open stage this person may decide, oldest first: the longest wait comes first."""
    paging = CursorForm(request.GET)
    if not paging.is_valid():
        return render(request, "approvals/inbox.html", {"paging_problems": paging.problems()}, status=400)
    awaiting = selectors.requests_awaiting(request.user).prefetch_related("decisions__approver")
    page = keyset_page(awaiting, key="id", cursor=paging.cursor(), newest_first=False)
    now = clock.now()
    return render(
        request,
        "approvals/inbox.html",
        {"summaries": [request_summary(r, now=now) for r in page.rows], "links": page_links(request, page)},
    )


@person_page("GET")
def decisions(request: HttpRequest) -> HttpResponse:
    paging = CursorForm(request.GET)
    if not paging.is_valid():
        return render(request, "approvals/decisions.html", {"paging_problems": paging.problems()}, status=400)
    page = keyset_page(selectors.decisions_by(request.user), key="id", cursor=paging.cursor(), newest_first=True)
    return render(request, "approvals/decisions.html", {"rows": page.rows, "links": page_links(request, page)})


@person_page("GET", "POST")
def decide(request: HttpRequest, pk: int) -> HttpResponse:
    """Show the request as the approver signs it, and take their decision.

    Deciding needs a re-authentication within ``JIT_REAUTH_SECONDS``; without one the approver
    confirms who they are first and comes back with their comment intact. A refusal for the
    person (their own request, a second stage, not their group) is the 403 page with the reason.
    """
    access_request = visible_request(request, pk)
    refusal = services.decision_refusal(access_request, approver=request.user, stage=None, digest=None, now=clock.now())
    if request.method == "GET" and isinstance(refusal, NotAllowed):
        raise PermissionDenied(refusal.detail)
    status = 200
    if request.method == "POST":
        # A decision that may land needs it, and so does one refused only for now: the request
        # can move on (a stage completes) between this check and the service's lock.
        final = services.decision_refusal_is_final(refusal, access_request, approver=request.user)
        if not final and not reauth_fresh(request):
            return reauth_detour(request)
        form = DecisionForm(request.POST)
        status = 400
        if form.is_valid():
            data = form.cleaned_data
            try:
                services.request_decide(
                    access_request,
                    approver=request.user,
                    decision=data["decision"],
                    comment=data["comment"],
                    stage=data["stage"],
                    digest=data["digest"],
                )
            except DomainError as error:
                status = refusal_shown(form, error)
            else:
                verb = "approved" if data["decision"] == DecisionKind.APPROVE else "denied"
                messages.success(request, f"You {verb} stage {data['stage']} of request #{pk}.")
                return redirect("approvals:inbox")
        elif isinstance(refusal, NotAllowed):
            raise PermissionDenied(refusal.detail)
        access_request = visible_request(request, pk)  # as it is now, after a refused decision
        refusal = services.decision_refusal(
            access_request, approver=request.user, stage=None, digest=None, now=clock.now()
        )
    else:
        # Back from re-authenticating: the comment typed before is still there.
        draft = reauth_draft_take(request)
        form = DecisionForm(
            initial={
                "comment": draft.get("comment", "") if draft else "",
                "stage": access_request.current_stage,
                "digest": access_request.digest,
            }
        )
    return render(
        request,
        "approvals/decide.html",
        {
            "summary": request_summary(access_request, now=clock.now()),
            "form": form,
            "closed": refusal,  # a Conflict: no longer pending, expired, or the content changed
            "reauth_fresh": reauth_fresh(request),
            "has_device": user_has_device(request.user, confirmed=True),
            "reauth_minutes": settings.JIT_REAUTH_SECONDS // 60,
        },
        status=status,
    )
