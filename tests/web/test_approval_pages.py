"""The auditors' pages over the approval workflow: a request's and a grant's timeline, and the
grant's evidence pack, which is recorded as exported every time it is shown or downloaded."""

from __future__ import annotations

import json
from typing import Any

import pytest

from approvals import services, workflow
from approvals.models import AccessRequest
from jitaccess.audit.checkpoints import checkpoint_write
from jitaccess.audit.services import audit_record
from jitaccess.audit.signing import signing_public_key
from tests.audit.conftest import GRANTED_AND_REVOKED
from tests.conftest import approve_through, submit
from tests.web.conftest import elements, facts_of, link, listed_seqs, recorded, table_rows, text_of


@pytest.fixture
def revoked(cast: dict[str, Any], entitlement: Any) -> tuple[AccessRequest, str]:
    """A request approved at both stages, its credential minted (returned in clear) and the grant revoked."""
    request = approve_through(submit(cast["requester"], entitlement), cast["legal1a"], cast["legal2"])
    token, _ = services.grant_credential_mint(request.grant, acting_user=cast["requester"])
    services.grant_revoke(request.grant, acting_user=cast["secadmin"], reason="work done")
    request.refresh_from_db()
    return request, token


def actions_listed(response: Any) -> list[str]:
    return [text_of(row) for row in elements(response, "code") if "." in text_of(row) and " " not in text_of(row)]


def test_a_request_timeline_shows_the_request_and_its_events_oldest_first(auditor, revoked):
    request, _ = revoked

    response = auditor.get(f"/audit/requests/{request.pk}/")

    assert response.status_code == 200
    facts = facts_of(response)
    assert facts["State"] == "approved"
    assert facts["Requester"] == "requester"
    assert facts["Ticket"] == "INC-1001"
    assert facts["Justification"] == "Mailbox sync failing for tenant 42"
    assert facts["Digest approvers sign"] == request.digest
    assert facts["Grant"] == f"grant {request.grant.pk}"
    stages = table_rows(response, f"Approval stages of request {request.pk}")
    assert [row[:4] for row in stages] == [
        ["1. Legal review", "legal-l1", "1", "approved"],
        ["2. Legal sign-off", "legal-l2", "1", "approved"],
    ]
    assert stages[0][4].startswith("legal1a: approve at ")
    seqs = listed_seqs(response)
    assert seqs == sorted(seqs)
    assert [a for a in actions_listed(response) if a != request.digest] == GRANTED_AND_REVOKED


def test_a_pending_request_timeline_shows_the_open_stage(auditor, pending):
    response = auditor.get(f"/audit/requests/{pending.pk}/")

    assert facts_of(response)["State"] == "pending"
    assert facts_of(response)["Grant"] == "none"
    assert "open" in [text_of(span) for span in elements(response, "span")]


def test_a_grant_timeline_shows_the_grant_and_its_credential_but_never_the_credential(auditor, revoked):
    request, token = revoked
    grant = request.grant

    response = auditor.get(f"/audit/grants/{grant.pk}/")

    assert response.status_code == 200
    facts = facts_of(response)
    assert facts["State"] == "revoked"
    assert facts["Holder"] == "requester"
    assert facts["Ended"].endswith("by secadmin — “work done”")
    assert facts["Credential"].startswith("minted ") and f"begins {grant.credential.prefix}…" in facts["Credential"]
    assert token not in response.content.decode()
    assert grant.credential.token_hash not in response.content.decode()
    assert actions_listed(response) == ["grant.issued", "credential.minted", "grant.revoked"]
    assert link(response, "Evidence pack") == f"/audit/grants/{grant.pk}/evidence/"


def test_a_long_timeline_pages_oldest_first(auditor, revoked):
    request, _ = revoked
    for i in range(12):
        audit_record("grant.http_request", grant_id=request.grant.pk, target_type="http", target_id=i)

    seen, url = [], f"/audit/grants/{request.grant.pk}/?page_size=5"
    while url:
        response = auditor.get(url)
        seen += listed_seqs(response)
        newer = link(response, "Newer →")
        url = f"/audit/grants/{request.grant.pk}/{newer}" if newer else None

    assert seen == sorted(seen) and len(seen) == len(set(seen)) == 15


@pytest.mark.parametrize("kind", ["requests", "grants"])
def test_a_bad_timeline_page_link_is_a_400(auditor, revoked, kind):
    request, _ = revoked
    pk = request.pk if kind == "requests" else request.grant.pk

    response = auditor.get(f"/audit/{kind}/{pk}/?after=soon")

    assert response.status_code == 400
    assert "after: Enter a whole number." in [text_of(li) for li in elements(response, "li")]
    assert facts_of(response)["State"]  # the summary still shows


@pytest.mark.parametrize("kind", ["requests", "grants", "grants/{}/evidence", "grants/{}/evidence.json"])
@pytest.mark.parametrize("pk", ["999999", "99999999999999999999"])
def test_an_unknown_request_or_grant_is_a_404(auditor, revoked, kind, pk):
    path = f"/audit/{kind.format(pk)}/" if "{}" in kind else f"/audit/{kind}/{pk}/"
    response = auditor.get(path.replace(".json/", ".json"))

    assert response.status_code == 404
    assert recorded("audit.evidence_exported") == []


# --- the evidence pack --------------------------------------------------------------------------


def test_the_evidence_page_holds_the_whole_pack_and_is_audited(auditor, revoked):
    request, token = revoked
    grant = request.grant
    checkpoint_write()

    response = auditor.get(f"/audit/grants/{grant.pk}/evidence/")

    assert response.status_code == 200
    page = response.content.decode()
    # Each approver's signed digest, and that it matches the request content.
    digest = workflow.request_digest(request)
    decisions = table_rows(response, "Decisions, in stage order")
    assert [(row[0], row[1], row[2], row[5], row[6]) for row in decisions] == [
        ("1", "legal1a", "approve", digest, "matches"),
        ("2", "legal2", "approve", digest, "matches"),
    ]
    assert "still hashes to its digest" in page
    # The policy snapshot's stages.
    stages = table_rows(response, "Stages of the policy snapshot")
    assert [row[:4] for row in stages] == [
        ["1", "Legal review", "legal-l1", "1"],
        ["2", "Legal sign-off", "legal-l2", "1"],
    ]
    # Every event, with its recomputed hash checked.
    events = table_rows(response, "Every event of the request and the grant")
    assert [row[3] for row in events] == GRANTED_AND_REVOKED
    assert all(row[-1] == "matches" for row in events)
    # The proof against the signed checkpoint.
    facts = facts_of(response)
    assert facts["Event hashes"] == "all 8 recomputed hashes match"
    assert facts["Checkpoint signature"] == "verifies"
    assert facts["Linked to the checkpoint"] == "the chain from the last event leads unbroken to the signed head"
    assert signing_public_key()[:16] in facts["Covering checkpoint"]
    # Never a secret: not the credential, its hash, nor the signing key's public half in full.
    assert token not in page and grant.credential.token_hash not in page
    assert signing_public_key() not in page
    # Viewing it is taking it away.
    [exported] = recorded("audit.evidence_exported")
    assert (exported.actor_name, exported.target_id, exported.grant_id) == ("auditor", str(grant.pk), grant.pk)
    assert exported.data["through_seq"] == int(events[-1][0])


def test_the_evidence_page_is_printable(auditor, revoked):
    request, _ = revoked

    response = auditor.get(f"/audit/grants/{request.grant.pk}/evidence/")

    assert elements(response, "link", rel="stylesheet", href="/static/css/app.css")
    assert elements(response, "script", src="/static/js/print.js")
    [button] = elements(response, "button", type="button")
    assert "data-print" in button.attrs and "hidden" in button.attrs  # shown by the script
    with open("static/css/app.css") as stylesheet:
        css = stylesheet.read()
    assert "@media print" in css and ".site-header, .skip-link, .no-print" in css


def test_every_showing_of_the_pack_is_recorded(auditor, revoked):
    request, _ = revoked

    auditor.get(f"/audit/grants/{request.grant.pk}/evidence/")
    auditor.get(f"/audit/grants/{request.grant.pk}/evidence/")

    assert len(recorded("audit.evidence_exported")) == 2


def test_the_json_download_is_the_apis_pack_and_is_audited(auditor, revoked, cast):
    request, token = revoked
    page = auditor.get(f"/audit/grants/{request.grant.pk}/evidence/")

    response = auditor.get(link(page, "Download JSON"))

    assert response.status_code == 200
    assert response["Content-Disposition"].startswith(f'attachment; filename="evidence-grant-{request.grant.pk}-')
    pack = json.loads(response.content)
    assert set(pack) == {
        "generated_at",
        "request",
        "request_digest_valid",
        "decisions",
        "grant",
        "events",
        "chain_proof",
    }
    assert [d["digest_matches"] for d in pack["decisions"]] == [True, True]
    assert pack["grant"]["credential"]["prefix"] == request.grant.credential.prefix
    assert token not in response.content.decode()
    api = auditor.get(f"/api/v1/grants/{request.grant.pk}/evidence/", HTTP_ACCEPT="application/json").json()
    assert set(api) == set(pack) and api["decisions"] == pack["decisions"] and api["request"] == pack["request"]
    assert len(recorded("audit.evidence_exported")) == 3  # the page, the download, the API
