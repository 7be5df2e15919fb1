"""The auditors' pages over the approval workflow: a request's and a grant's timeline, and a
grant's evidence pack. They live here rather than with the audit pages because they read this
app's models, and the audit code imports no app."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from rest_framework.renderers import JSONRenderer

from approvals import evidence, selectors, workflow
from approvals.api.serializers import EvidencePackSerializer
from approvals.models import AccessRequest, Grant, GrantCredential
from jitaccess import clock
from jitaccess.audit.pages.views import EventRow, checkpoint_view, event_rows
from jitaccess.web.access import auditor_page
from jitaccess.web.outcomes import object_or_404
from jitaccess.web.paging import CursorForm, keyset_page, page_links


@dataclass(frozen=True)
class RequestSummary:
    request: AccessRequest
    state: str  # as a reader sees it now: a pending request past its TTL reads expired
    stages: list[dict[str, Any]]  # the frozen policy's stages, each with its state and decisions
    grant: Grant | None


def request_summary(access_request: AccessRequest, *, now: datetime) -> RequestSummary:
    state = selectors.request_effective_state(access_request, at=now)
    stages = workflow.stage_states(
        access_request.policy_snapshot,
        state=state,
        current_stage=access_request.current_stage,
        decisions=access_request.decisions.all(),
    )
    return RequestSummary(access_request, state, stages, getattr(access_request, "grant", None))


@dataclass(frozen=True)
class GrantSummary:
    grant: Grant
    state: str  # an active grant past expires_at reads expired
    credential: GrantCredential | None


def grant_summary(grant: Grant, *, now: datetime) -> GrantSummary:
    return GrantSummary(grant, selectors.grant_effective_state(grant, at=now), getattr(grant, "credential", None))


def _timeline(request: HttpRequest, template: str, events: QuerySet, context: dict[str, Any]) -> HttpResponse:
    paging = CursorForm(request.GET)
    if not paging.is_valid():
        return render(request, template, {**context, "paging_problems": paging.problems()}, status=400)
    page = keyset_page(events, key="seq", cursor=paging.cursor(), newest_first=False)
    return render(request, template, {**context, "rows": event_rows(page.rows), "links": page_links(request, page)})


@auditor_page
def request_timeline(request: HttpRequest, pk: int) -> HttpResponse:
    access_request = object_or_404(
        selectors.requests_visible_to(request.user)
        .select_related("grant__user", "grant__security_group", "grant__entitlement", "grant__credential")
        .prefetch_related("decisions__approver"),
        pk,
        "request",
    )
    summary = request_summary(access_request, now=clock.now())
    return _timeline(request, "approvals/request_timeline.html", selectors.request_timeline(pk), {"summary": summary})


@auditor_page
def grant_timeline(request: HttpRequest, pk: int) -> HttpResponse:
    grant = object_or_404(
        selectors.grants_visible_to(request.user).select_related("request", "credential"), pk, "grant"
    )
    summary = grant_summary(grant, now=clock.now())
    return _timeline(request, "approvals/grant_timeline.html", selectors.grant_timeline(pk), {"summary": summary})


@dataclass(frozen=True)
class ProvenEvent(EventRow):
    hash_ok: bool  # the event's content still hashes to its stored hash


@auditor_page
def grant_evidence(request: HttpRequest, pk: int) -> HttpResponse:
    """The pack as a printable page. Showing it is taking it away, so it is recorded as exported."""
    grant = object_or_404(selectors.grants_visible_to(request.user), pk, "grant")
    pack = evidence.grant_evidence_export(grant, acting_user=request.user)
    proof = pack.chain_proof
    hash_ok = {item["seq"]: item["hash_ok"] for item in proof["events"]}
    return render(
        request,
        "approvals/evidence.html",
        {
            "pack": pack,
            "request_summary": request_summary(pack.request, now=pack.generated_at),
            "grant_summary": grant_summary(pack.grant, now=pack.generated_at),
            "events": [
                ProvenEvent(row.event, row.target_url, row.grant_url, hash_ok[row.event.seq])
                for row in event_rows(pack.events)
            ],
            "proof": proof,
            "checkpoint": checkpoint_view(proof["checkpoint"]),
        },
    )


@auditor_page
def grant_evidence_download(request: HttpRequest, pk: int) -> HttpResponse:
    """The pack as the API gives it (``GET /api/v1/grants/<id>/evidence/``), as a file."""
    grant = object_or_404(selectors.grants_visible_to(request.user), pk, "grant")
    pack = evidence.grant_evidence_export(grant, acting_user=request.user)
    body = JSONRenderer().render(EvidencePackSerializer(pack, context={"now": pack.generated_at}).data)
    response = HttpResponse(body, content_type="application/json")
    stamp = pack.generated_at.strftime("%Y%m%dT%H%M%SZ")
    response["Content-Disposition"] = f'attachment; filename="evidence-grant-{grant.pk}-{stamp}.json"'
    return response
