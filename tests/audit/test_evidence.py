"""The evidence pack of a grant: request, policy snapshot, signed decisions, the grant and its
credential (never the secret), every audit event with the chain proof; itself audited."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from rest_framework.test import APIClient

from approvals import services
from approvals.models import AccessRequest
from jitaccess.audit.checkpoints import checkpoint_write
from jitaccess.audit.models import AuditEvent
from tests.audit.conftest import GRANTED_AND_REVOKED, T0, iso
from tests.conftest import submit

API = "/api/v1"


@pytest.fixture
def flow(cast: dict[str, Any], entitlement: Any, frozen_clock: Any) -> dict[str, Any]:
    """Submitted at T0, approved at both stages with comments, credential minted, revoked early;
    a second, unrelated request by someone else on the side."""
    request = submit(cast["requester"], entitlement, duration_seconds=7200, ticket="INC-4242")
    frozen_clock.advance(minutes=5)
    services.request_decide(request, approver=cast["legal1a"], decision="approve", comment="scope is narrow")
    frozen_clock.advance(minutes=5)
    unrelated = submit(cast["admin2"], entitlement)
    frozen_clock.advance(minutes=20)
    services.request_decide(request, approver=cast["legal2"], decision="approve", comment="signed off", stage=2)
    request.refresh_from_db()
    frozen_clock.advance(minutes=1)
    token, credential = services.grant_credential_mint(request.grant, acting_user=cast["requester"])
    frozen_clock.advance(minutes=30)
    services.grant_revoke(request.grant, acting_user=cast["secadmin"], reason="incident closed")
    return {"request": request, "grant": request.grant, "token": token, "credential": credential, "other": unrelated}


def evidence(client: APIClient, grant_id: int) -> dict[str, Any]:
    response = client.get(f"{API}/grants/{grant_id}/evidence/")
    assert response.status_code == 200, response.content
    return response.json()


def test_the_pack_holds_the_request_its_policy_and_the_signed_decisions(cast, flow, auditor_api):
    request: AccessRequest = flow["request"]

    pack = evidence(auditor_api, flow["grant"].pk)

    assert pack["request"] == {
        "id": request.pk,
        "entitlement": "dkm-test",
        "requester": "requester",
        "purpose": "debugging",
        "justification": "Mailbox sync failing for tenant 42",
        "ticket": "INC-4242",
        "duration_seconds": 7200,
        "state": "approved",
        "current_stage": None,
        "created_at": iso(T0),
        "pending_expires_at": iso(T0 + timedelta(days=1)),
        "decided_at": iso(T0 + timedelta(minutes=30)),
        "digest": request.digest,
        "policy_snapshot": request.policy_snapshot,
    }
    assert [stage["approver_group"] for stage in pack["request"]["policy_snapshot"]["stages"]] == [
        "legal-l1",
        "legal-l2",
    ]
    assert pack["request_digest_valid"] is True
    assert pack["decisions"] == [
        {
            "approver": "legal1a",
            "stage": 1,
            "decision": "approve",
            "comment": "scope is narrow",
            "digest": request.digest,
            "decided_at": iso(T0 + timedelta(minutes=5)),
            "digest_matches": True,
        },
        {
            "approver": "legal2",
            "stage": 2,
            "decision": "approve",
            "comment": "signed off",
            "digest": request.digest,
            "decided_at": iso(T0 + timedelta(minutes=30)),
            "digest_matches": True,
        },
    ]


def test_the_pack_holds_the_grant_and_what_is_known_of_its_credential(cast, flow, auditor_api):
    grant = flow["grant"]

    pack = evidence(auditor_api, grant.pk)

    assert pack["grant"] == {
        "id": grant.pk,
        "request": flow["request"].pk,
        "user": "requester",
        "entitlement": "dkm-test",
        "security_group": "dkm-test",
        "starts_at": iso(T0 + timedelta(minutes=30)),
        "expires_at": iso(T0 + timedelta(minutes=150)),
        "state": "revoked",
        "ended_at": iso(T0 + timedelta(minutes=61)),
        "ended_by": "secadmin",
        "end_reason": "incident closed",
        "credential_minted": True,
        "credential": {
            "prefix": flow["credential"].prefix,
            "minted_at": iso(T0 + timedelta(minutes=31)),
            "expires_at": iso(T0 + timedelta(minutes=150)),
            "revoked_at": iso(T0 + timedelta(minutes=61)),
            "last_used_at": None,
        },
    }
    text = json.dumps(pack)
    assert flow["token"] not in text
    assert flow["credential"].token_hash not in text
    assert flow["token"][len(flow["credential"].prefix) :] not in text


def test_the_pack_holds_every_event_of_the_request_and_grant_with_the_chain_proof(cast, flow, auditor_api):
    checkpoint = checkpoint_write()

    pack = evidence(auditor_api, flow["grant"].pk)

    events = pack["events"]
    assert [event["action"] for event in events] == GRANTED_AND_REVOKED
    for event in events:
        stored = AuditEvent.objects.get(seq=event["seq"])
        assert (event["prev_hash"], event["hash"], event["correlation_id"], event["data"]) == (
            stored.prev_hash,
            stored.hash,
            stored.correlation_id,
            stored.data,
        )
    assert [event["seq"] for event in events] == sorted(event["seq"] for event in events)
    other = str(flow["other"].pk)
    assert not [e for e in events if e["target_type"] == "access_request" and e["target_id"] == other]

    proof = pack["chain_proof"]
    assert [item["seq"] for item in proof["events"]] == [event["seq"] for event in events]
    assert proof["all_hashes_ok"] is True
    assert proof["checkpoint"]["seq"] == checkpoint.seq >= events[-1]["seq"]
    assert proof["checkpoint_signature_ok"] is True
    assert proof["linked_to_checkpoint"] is True


def test_a_later_pack_shows_the_earlier_export_and_says_when_no_checkpoint_covers_it(flow, auditor_api):
    first = evidence(auditor_api, flow["grant"].pk)

    second = evidence(auditor_api, flow["grant"].pk)

    assert second["events"][:-1] == first["events"]
    assert second["events"][-1]["action"] == "audit.evidence_exported"
    assert second["chain_proof"]["all_hashes_ok"] is True
    assert second["chain_proof"]["checkpoint"] is None


def test_each_pack_is_itself_audited(cast, flow, auditor_api):
    evidence(auditor_api, flow["grant"].pk)
    evidence(auditor_api, flow["grant"].pk)

    records = list(AuditEvent.objects.filter(action="audit.evidence_exported"))
    assert len(records) == 2
    assert {(r.actor_id, r.grant_id, r.target_type, r.target_id) for r in records} == {
        (cast["auditor"].pk, flow["grant"].pk, "grant", str(flow["grant"].pk))
    }
    last_event = AuditEvent.objects.get(action="grant.revoked").seq
    assert records[0].data == {"request": flow["request"].pk, "through_seq": last_event}


def test_a_request_edited_behind_the_apps_back_shows_in_the_pack(flow, auditor_api):
    AccessRequest.objects.filter(pk=flow["request"].pk).update(justification="something else entirely")

    pack = evidence(auditor_api, flow["grant"].pk)

    assert pack["request_digest_valid"] is False
    assert [decision["digest_matches"] for decision in pack["decisions"]] == [False, False]


def test_no_audit_record_means_no_pack(flow, audit_unavailable, auditor_seeing_errors):
    audit_unavailable("approvals.evidence")

    response = auditor_seeing_errors.get(f"{API}/grants/{flow['grant'].pk}/evidence/")

    assert response.status_code == 500
    assert b"justification" not in response.content


@pytest.mark.parametrize("pk", ["999999", "not-a-number"])
def test_an_unknown_grant_has_no_pack(auditor_api, flow, pk):
    response = auditor_api.get(f"{API}/grants/{pk}/evidence/")

    assert response.status_code == 404
    assert not AuditEvent.objects.filter(action="audit.evidence_exported").exists()
