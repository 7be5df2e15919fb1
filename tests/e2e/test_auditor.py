"""An auditor in a real browser: from the filtered trail to a request's timeline, its grant (ended
by the real worker at expiry) and the grant's evidence pack, then the verification; and every way
of changing something refused (a POST to an audit page, the admin, the API)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect

from approvals import services
from approvals.models import Grant, GrantState
from jitaccess.audit.models import AuditEvent
from tests.conftest import approve_through, submit
from tests.e2e.conftest import csrf_headers, screenshot, sign_in
from tests.worker import wait_for


def events_table(page: Page, caption: str) -> Locator:
    return page.get_by_role("table", name=caption)


def action_cells(page: Page, caption: str) -> list[str]:
    """The Action column of an event table, top to bottom."""
    table = events_table(page, caption)
    column = table.locator("thead th").all_inner_texts().index("Action") + 1
    return table.locator(f"tbody tr td:nth-child({column})").all_inner_texts()


def fact(page: Page, term: str) -> Locator:
    """The description of a term in the page's first fact list that has it."""
    return (
        page.locator("dl.facts > div")
        .filter(has=page.get_by_role("term").filter(has_text=re.compile(f"^{re.escape(term)}$")))
        .first.get_by_role("definition")
    )


@pytest.fixture
def expired_grant(cast: dict[str, Any], entitlement: Any, celery_worker: None) -> tuple[Grant, str]:
    """A grant approved by both stages, its credential minted, and ended by the worker at expiry;
    besides it, a request another admin had denied."""
    request = approve_through(
        submit(cast["requester"], entitlement, duration_seconds=2), cast["legal1a"], cast["legal2"]
    )
    grant = request.grant
    token, _ = services.grant_credential_mint(grant, acting_user=cast["requester"])
    denied = submit(cast["admin2"], entitlement, ticket="INC-2002")
    services.request_decide(denied, approver=cast["legal1b"], decision="deny", comment="No change window")
    assert wait_for(lambda: Grant.objects.get(pk=grant.pk).state == GrantState.EXPIRED, timeout=15)
    grant.refresh_from_db()
    return grant, token


@pytest.mark.postgres
@pytest.mark.worker
def test_an_auditor_follows_a_request_from_the_filtered_trail_to_the_evidence_pack(page, cast, expired_grant):
    grant, token = expired_grant
    sign_in(page, "auditor", "pw-auditor")
    expect(page.get_by_role("heading", level=1, name="Audit events")).to_be_visible()
    expect(events_table(page, "Audit events, newest first")).to_contain_text("grant.expired")
    screenshot(page, "audit-events")

    # Filter the trail down to the approvers' decisions.
    page.get_by_label("Action", exact=True).fill("decision.*")
    page.get_by_role("button", name="Apply filters").click()
    expect(page).to_have_url(re.compile(r"[?&]action=decision\.\*"))
    expect(page.get_by_role("heading", level=2, name="Matching events, newest first")).to_be_visible()
    assert action_cells(page, "Audit events, newest first") == [
        "decision.denied",
        "decision.approved",
        "decision.approved",
    ]
    screenshot(page, "audit-events-filtered")

    # The granted request's timeline: from submission to the end of its grant.
    page.get_by_role("link", name=f"access_request {grant.request_id}").first.click()
    expect(page.get_by_role("heading", level=1, name=f"Request {grant.request_id}")).to_be_visible()
    expect(fact(page, "State")).to_have_text("approved")
    expect(fact(page, "Requester")).to_have_text("requester")
    timeline = action_cells(page, "Events of this request, oldest first")
    assert timeline[0] == "request.submitted"
    for action in ("decision.approved", "request.approved", "grant.issued", "credential.minted", "grant.expired"):
        assert action in timeline, timeline
    screenshot(page, "audit-request-timeline")

    # Its grant, ended by the worker: the expiry is the system's, not a person's.
    fact(page, "Grant").get_by_role("link", name=f"grant {grant.pk}").click()
    expect(page.get_by_role("heading", level=1, name=f"Grant {grant.pk}")).to_be_visible()
    expect(fact(page, "State")).to_have_text("expired")
    expired_row = (
        events_table(page, "Events of this grant, oldest first").get_by_role("row").filter(has_text="grant.expired")
    )
    expect(expired_row).to_contain_text("system")
    screenshot(page, "audit-grant-timeline")

    # The evidence pack: both approvals match the request's digest and every event's hash holds.
    page.get_by_role("link", name="Evidence pack").click()
    expect(page.get_by_role("heading", level=1, name=f"Evidence pack: grant {grant.pk}")).to_be_visible()
    decisions = page.get_by_role("table", name="Decisions, in stage order").locator("tbody tr")
    expect(decisions).to_have_count(2)
    expect(decisions.filter(has_text="matches")).to_have_count(2)
    expect(decisions.nth(0)).to_contain_text("legal1a")
    expect(decisions.nth(1)).to_contain_text("legal2")
    expect(fact(page, "Event hashes")).to_contain_text("recomputed hashes match")
    # The credential is never shown again, not even to an auditor: only its prefix.
    assert token not in page.content()
    screenshot(page, "audit-evidence-pack")
    # The same pack as a file; showing it and downloading it are each recorded as an export.
    with page.expect_download() as download:
        page.get_by_role("link", name="Download JSON").click()
    pack = json.loads(Path(download.value.path()).read_text())
    assert pack["grant"]["id"] == grant.pk and pack["chain_proof"]["all_hashes_ok"] is True
    assert token not in json.dumps(pack)
    exports = AuditEvent.objects.filter(action="audit.evidence_exported")
    assert [(e.actor_name, e.grant_id) for e in exports] == [("auditor", grant.pk)] * 2

    # And the whole trail verifies.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Verification").click()
    expect(page.get_by_role("heading", level=1, name="Verification of the audit trail")).to_be_visible()
    expect(page.get_by_role("status").filter(has_text="verified")).to_contain_text("OK")
    expect(fact(page, "First invalid event")).to_have_text("none")
    screenshot(page, "audit-verification")


def test_an_auditor_changes_nothing_through_the_pages_the_admin_or_the_api(page, cast, granted):
    grant = granted.grant
    # Auditors are staff, as in the demo, so that they can read the admin.
    cast["auditor"].is_staff = True
    cast["auditor"].save(update_fields=["is_staff"])
    sign_in(page, "auditor", "pw-auditor")
    # A POST carries the CSRF token, so what refuses it is the page or the API, not the CSRF check.
    headers = csrf_headers(page)

    # The audit pages take GET only: the evidence pack's record is not written for a POST either.
    for path in ("/audit/", f"/audit/grants/{grant.pk}/", f"/audit/grants/{grant.pk}/evidence/"):
        assert page.request.post(path, headers=headers).status == 405, path
    assert not AuditEvent.objects.filter(action="audit.evidence_exported").exists()

    # The API refuses a revocation by the auditor's own session, and records the attempt.
    answer = page.request.post(f"/api/v1/grants/{grant.pk}/revoke/", headers=headers, data={"reason": "audit"})
    assert answer.status == 403
    assert answer.json()["code"] == "not_allowed"
    assert Grant.objects.get(pk=grant.pk).state == GrantState.ACTIVE
    assert AuditEvent.objects.get(action="grant.revoke_refused").actor_name == "auditor"

    # The admin shows workflow records, policies and the trail to read, with no way to add or
    # change them.
    for model in ("approvals/grant", "approvals/entitlement", "audit/auditevent"):
        assert page.goto(f"/admin/{model}/").status == 200, model
        expect(page.get_by_role("heading", level=1)).to_have_text(re.compile(r"^Select .+ to view$"))
        expect(page.get_by_role("link", name=re.compile(r"^Add\b"))).to_have_count(0)
        assert page.request.get(f"/admin/{model}/add/").status == 403, model
    assert page.goto(f"/admin/approvals/grant/{grant.pk}/change/").status == 200
    expect(page.get_by_role("heading", level=1)).to_have_text("View grant")
    expect(page.get_by_role("button", name=re.compile(r"^Save"))).to_have_count(0)
    expect(page.get_by_role("link", name="Delete")).to_have_count(0)
    first_event = AuditEvent.objects.order_by("seq").first()
    refused = page.request.post(
        f"/admin/audit/auditevent/{first_event.pk}/delete/", headers=headers, form={"post": "yes"}
    )
    assert refused.status == 403
    assert AuditEvent.objects.filter(pk=first_event.pk).exists()
