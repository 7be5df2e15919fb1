"""The auditors' pages: events, one event, verification, reports and configuration changes.

Views validate with the API's forms and read through the API's selectors; downloads link to the
API endpoints that stream them and record them in the trail.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from auditlog.models import LogEntry
from auditlog.registry import auditlog
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse
from django.utils.http import urlencode

from jitaccess.audit import selectors
from jitaccess.audit.checkpoints import latest_checkpoint, parse_entry_time
from jitaccess.audit.filters import BIGINT_MAX, EventFilterForm
from jitaccess.audit.models import AuditEvent
from jitaccess.audit.pages.forms import (
    ChangeFilterPageForm,
    EventFilterPageForm,
    ReportPageForm,
)
from jitaccess.audit.reports import REPORTS
from jitaccess.audit.signing import signing_public_key
from jitaccess.audit.verification import verify_audit
from jitaccess.web.access import auditor_page
from jitaccess.web.paging import CursorForm, keyset_page, page_links

# --- what the templates show --------------------------------------------------------------------


@dataclass(frozen=True)
class CheckpointView:
    """A signed checkpoint as a page shows it: the public key only as a short fingerprint."""

    seq: int
    at: datetime
    fingerprint: str
    current_key: bool  # signed by the key that signs checkpoints now (else a retired, trusted one)


def checkpoint_view(entry: dict[str, Any] | None) -> CheckpointView | None:
    if entry is None:
        return None
    public_key = str(entry["public_key"])
    return CheckpointView(
        seq=int(entry["seq"]),
        at=parse_entry_time(str(entry["at"])),
        # Hex digits a reader can find again in the checkpoint sink's "public_key" field.
        fingerprint=public_key[:16],
        current_key=public_key == signing_public_key(),
    )


def _url(name: str, *args: Any) -> str | None:
    # A target id is whatever the recording code put there; one that fits no page gets no link.
    try:
        return reverse(name, args=args)
    except NoReverseMatch:
        return None


@dataclass(frozen=True)
class EventRow:
    event: AuditEvent
    target_url: str | None
    grant_url: str | None


# The pages of targets that have one (they live with the apps that own the targets).
TARGET_PAGES = {"access_request": "approvals:request-timeline", "grant": "approvals:grant-timeline"}


def event_row(event: AuditEvent) -> EventRow:
    target_page = TARGET_PAGES.get(event.target_type)
    return EventRow(
        event=event,
        target_url=_url(target_page, event.target_id) if target_page else None,
        grant_url=_url("approvals:grant-timeline", event.grant_id) if event.grant_id is not None else None,
    )


def event_rows(events: Any) -> list[EventRow]:
    return [event_row(event) for event in events]


def _query(form_data: Any, names: Any, **extra: str) -> str:
    """The given (non-blank) parameters among ``names``, plus ``extra``, as a query string."""
    given = [(name, form_data[name]) for name in names if form_data.get(name)]
    return urlencode([*given, *extra.items()])


# --- events -------------------------------------------------------------------------------------


@auditor_page
def event_list(request: HttpRequest) -> HttpResponse:
    form = EventFilterPageForm(request.GET)
    paging = CursorForm(request.GET)
    context: dict[str, Any] = {
        "form": form,
        "paging_problems": [],
        "checkpoint": checkpoint_view(latest_checkpoint()),
    }
    if not form.is_valid() or not paging.is_valid():
        context["paging_problems"] = paging.problems()
        return render(request, "audit/events.html", context, status=400)
    page = keyset_page(selectors.events_matching(form.filters()), key="seq", cursor=paging.cursor(), newest_first=True)
    filters = list(EventFilterForm.base_fields)
    context.update(
        rows=event_rows(page.rows),
        links=page_links(request, page),
        export_jsonl=reverse("audit-export") + "?" + _query(request.GET, filters, format="jsonl"),
        export_csv=reverse("audit-export") + "?" + _query(request.GET, filters, format="csv"),
        filtered=any(request.GET.get(name) for name in filters),
    )
    return render(request, "audit/events.html", context)


@auditor_page
def event_detail(request: HttpRequest, seq: int) -> HttpResponse:
    if seq > BIGINT_MAX:
        raise Http404("No such event.")
    event = selectors.events_matching(selectors.EventFilters(seq_min=seq, seq_max=seq)).first()
    if event is None:
        raise Http404("No such event.")
    return render(
        request,
        "audit/event.html",
        {
            "row": event_row(event),
            "data": json.dumps(event.data, indent=2, sort_keys=True, ensure_ascii=False),
            "previous_seq": seq - 1 if seq > 1 else None,
            "next_seq": seq + 1 if seq < selectors.events_head_seq() else None,
            "actor_query": urlencode({"actor": event.actor_name}) if event.actor_name else None,
            "correlation_query": urlencode({"correlation_id": event.correlation_id}) if event.correlation_id else None,
        },
    )


# --- verification -------------------------------------------------------------------------------


@auditor_page
def verification(request: HttpRequest) -> HttpResponse:
    report = verify_audit().as_dict()
    return render(
        request, "audit/verify.html", {"report": report, "checkpoint": checkpoint_view(report["last_checkpoint"])}
    )


# --- reports ------------------------------------------------------------------------------------


@auditor_page
def report_list(request: HttpRequest) -> HttpResponse:
    return render(request, "audit/reports.html", {"reports": sorted(REPORTS.values(), key=lambda r: r.name)})


@auditor_page
def report_detail(request: HttpRequest, name: str) -> HttpResponse:
    report = REPORTS.get(name)
    if report is None:
        raise Http404("No such report.")
    form = ReportPageForm(request.GET)
    context: dict[str, Any] = {"report": report, "form": form}
    if not form.is_valid():
        return render(request, "audit/report.html", context, status=400)
    rows = report.rows(form.window())
    context.update(
        table=[[row[column] for column in report.columns] for row in rows],
        csv_url=reverse("audit-report", args=[name]) + "?" + _query(request.GET, form.fields, format="csv"),
    )
    return render(request, "audit/report.html", context)


# --- configuration changes ----------------------------------------------------------------------


@dataclass(frozen=True)
class ChangeRow:
    entry: LogEntry
    model: str
    changes: list[tuple[str, str]]  # field, what happened to it


def _change_text(value: Any) -> str:
    if isinstance(value, list) and len(value) == 2:
        return f"{value[0]} → {value[1]}"
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def change_row(entry: LogEntry) -> ChangeRow:
    changes = entry.changes_dict or {}
    return ChangeRow(
        entry=entry,
        model=f"{entry.content_type.app_label}.{entry.content_type.model}",
        changes=[(name, _change_text(value)) for name, value in sorted(changes.items())],
    )


def tracked_models() -> list[str]:
    return sorted(f"{model._meta.app_label}.{model._meta.model_name}" for model in auditlog.get_models())


@auditor_page
def change_list(request: HttpRequest) -> HttpResponse:
    form = ChangeFilterPageForm(request.GET, model_suggestions=tracked_models())
    paging = CursorForm(request.GET)
    context: dict[str, Any] = {"form": form, "paging_problems": []}
    if not form.is_valid() or not paging.is_valid():
        context["paging_problems"] = paging.problems()
        return render(request, "audit/changes.html", context, status=400)
    page = keyset_page(selectors.config_changes(form.filters()), key="id", cursor=paging.cursor(), newest_first=True)
    context.update(rows=[change_row(entry) for entry in page.rows], links=page_links(request, page))
    return render(request, "audit/changes.html", context)
