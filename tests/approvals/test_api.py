"""The approvals API through its public surface (docs API.md): entitlements, requests, decisions,
grants, credentials, and the meta endpoints. Every test asserts the status code and what it left
in the database."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.utils.dateparse import parse_datetime
from rest_framework.test import APIClient

from approvals import services
from approvals.models import (
    AccessRequest,
    ApprovalStage,
    Decision,
    Entitlement,
    Grant,
    GrantCredential,
    RequestState,
)
from jitaccess import clock
from jitaccess.audit.models import AuditEvent
from tests.conftest import approve_through, as_user, make_user, submit

API = "/api/v1"

REQUEST_FIELDS = {
    "id", "entitlement", "requester", "purpose", "justification", "ticket", "duration_seconds", "state",
    "current_stage", "digest", "created_at", "decided_at", "stages", "grant",
}  # fmt: skip
STAGE_FIELDS = {"order", "name", "required_approvals", "state", "decisions"}
DECISION_FIELDS = {"approver", "decision", "comment", "decided_at"}
GRANT_FIELDS = {
    "id", "request", "user", "entitlement", "security_group", "starts_at", "expires_at", "state", "ended_at",
    "ended_by", "end_reason",
}  # fmt: skip


# --- helpers ------------------------------------------------------------------------------------


def request_url(request: AccessRequest | int, action: str = "") -> str:
    pk = getattr(request, "pk", request)
    return f"{API}/requests/{pk}/" + (f"{action}/" if action else "")


def grant_url(grant: Grant | int, action: str = "") -> str:
    pk = getattr(grant, "pk", grant)
    return f"{API}/grants/{pk}/" + (f"{action}/" if action else "")


def client_for(user: Any) -> APIClient:
    return as_user(APIClient(), user)


def post(user: Any, url: str, data: Any = None) -> Any:
    return client_for(user).post(url, {} if data is None else data, format="json")


def get(user: Any, url: str, **params: Any) -> Any:
    return client_for(user).get(url, params)


def listed_ids(response: Any) -> list[int]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def events(action: str, **filters: Any) -> int:
    return AuditEvent.objects.filter(action=action, **filters).count()


def the_past() -> Any:
    return clock.now() - timedelta(seconds=1)


def make_overdue(grant: Grant) -> Grant:
    """Move the grant's end into the past, as if its time ran out with no task running."""
    now = clock.now()
    Grant.objects.filter(pk=grant.pk).update(starts_at=now - timedelta(hours=1), expires_at=now - timedelta(seconds=1))
    grant.refresh_from_db()
    return grant


def grant_for(requester: Any, entitlement: Entitlement, cast: dict[str, Any]) -> Grant:
    request = approve_through(submit(requester, entitlement), cast["legal1a"], cast["legal2"])
    return Grant.objects.get(request=request)


def add_group(user: Any, name: str) -> None:
    user.groups.add(Group.objects.get_or_create(name=name)[0])


@pytest.fixture
def narrow(entitlement: Entitlement) -> Entitlement:
    """A variant of ``entitlement`` that allows only the auditing purpose."""
    variant = Entitlement.objects.create(
        slug="dkm-narrow",
        name="DKM narrow",
        description="auditing only",
        security_group=entitlement.security_group,
        requester_group=entitlement.requester_group,
        purposes=["auditing"],
        requires_ticket=True,
        default_duration_seconds=600,
        max_duration_seconds=3600,
    )
    for stage in entitlement.stages.all():
        ApprovalStage.objects.create(
            entitlement=variant, order=stage.order, name=stage.name, approver_group=stage.approver_group
        )
    return variant


def valid_body(**changes: Any) -> dict[str, Any]:
    body = {
        "entitlement": "dkm-test",
        "purpose": "debugging",
        "justification": "Mailbox sync failing for tenant 42",
        "ticket": "INC-1001",
        "duration_seconds": 3600,
    }
    for name, value in changes.items():
        if value is DROP:
            body.pop(name)
        else:
            body[name] = value
    return body


DROP = object()


# --- entitlements -------------------------------------------------------------------------------


def test_it_lists_entitlements_in_the_contract_shape(cast, entitlement):
    response = get(cast["requester"], f"{API}/entitlements/")

    assert response.status_code == 200
    [row] = response.json()
    expected = {
        "slug": "dkm-test",
        "name": "DKM test",
        "description": "",
        "security_group": "dkm-test",
        "max_duration_seconds": 8 * 3600,
        "default_duration_seconds": 3600,
        "purposes": ["debugging", "troubleshooting", "auditing"],
        "requires_ticket": True,
        "stages": [
            {"order": 1, "name": "Legal review", "approver_group": "legal-l1", "required_approvals": 1},
            {"order": 2, "name": "Legal sign-off", "approver_group": "legal-l2", "required_approvals": 1},
        ],
    }
    assert {name: row[name] for name in expected} == expected
    assert [{name: stage[name] for name in expected["stages"][0]} for stage in row["stages"]] == expected["stages"]


def test_it_lists_entitlements_to_their_approvers_and_readers(cast, entitlement, narrow):
    for name in ["legal1a", "legal2", "auditor", "secadmin"]:
        response = get(cast[name], f"{API}/entitlements/")
        assert response.status_code == 200
        assert [row["slug"] for row in response.json()] == ["dkm-narrow", "dkm-test"], name


def test_it_shows_the_outsider_no_entitlements(cast, entitlement):
    response = get(cast["outsider"], f"{API}/entitlements/")
    assert response.status_code == 200
    assert response.json() == []
    assert get(cast["outsider"], f"{API}/entitlements/dkm-test/").status_code == 404


@pytest.mark.parametrize(
    "slug",
    ["%00", "dkm%00test", "a%2Fb", "..", "%C3%A9", "%FF", "a%20b", "x" * 500, "dkm-test" + "%00" * 3],
    ids=["nul", "embedded nul", "encoded slash", "dots", "non-ascii", "bad utf-8", "space", "500 chars", "tail"],
)
def test_it_answers_an_unknown_or_malformed_entitlement_slug_without_a_server_error(cast, entitlement, slug):
    response = get(cast["secadmin"], f"{API}/entitlements/{slug}/")
    assert response.status_code in (400, 404)


# --- submitting requests ------------------------------------------------------------------------


def test_it_creates_a_request_with_every_contract_field(cast, entitlement):
    before = clock.now()
    response = post(cast["requester"], f"{API}/requests/", valid_body(duration_seconds=1800))

    assert response.status_code == 201, response.content
    body = response.json()
    assert REQUEST_FIELDS <= set(body)
    stored = AccessRequest.objects.get()
    assert body["id"] == stored.pk
    assert {name: body[name] for name in ["entitlement", "requester", "purpose", "justification", "ticket"]} == {
        "entitlement": "dkm-test",
        "requester": "requester",
        "purpose": "debugging",
        "justification": "Mailbox sync failing for tenant 42",
        "ticket": "INC-1001",
    }
    assert body["duration_seconds"] == 1800
    assert body["state"] == "pending"
    assert body["current_stage"] == 1
    assert re.fullmatch(r"[0-9a-f]{64}", body["digest"])
    assert body["digest"] == stored.digest
    assert before <= parse_datetime(body["created_at"]) <= clock.now()
    assert body["decided_at"] is None
    assert body["grant"] is None
    assert [STAGE_FIELDS <= set(stage) for stage in body["stages"]] == [True, True]
    assert [(s["order"], s["name"], s["required_approvals"], s["state"], s["decisions"]) for s in body["stages"]] == [
        (1, "Legal review", 1, "open", []),
        (2, "Legal sign-off", 1, "waiting", []),
    ]

    assert stored.requester == cast["requester"]
    assert stored.entitlement == entitlement
    assert (stored.state, stored.duration_seconds, stored.current_stage) == ("pending", 1800, 1)
    assert events("request.submitted", actor=cast["requester"], target_id=str(stored.pk)) == 1


def test_it_takes_the_default_duration_when_none_is_sent(cast, entitlement):
    response = post(cast["requester"], f"{API}/requests/", valid_body(duration_seconds=DROP))
    assert response.status_code == 201, response.content
    assert response.json()["duration_seconds"] == 3600
    assert AccessRequest.objects.get().duration_seconds == 3600


def test_it_accepts_a_duration_of_exactly_the_maximum(cast, entitlement):
    response = post(cast["requester"], f"{API}/requests/", valid_body(duration_seconds=8 * 3600))
    assert response.status_code == 201, response.content
    assert AccessRequest.objects.get().duration_seconds == 8 * 3600


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"entitlement": "no-such-entitlement"}, "entitlement"),
        ({"entitlement": "dkm-narrow", "purpose": "debugging"}, "purpose"),
        ({"purpose": "curiosity"}, "purpose"),
        ({"ticket": DROP}, "ticket"),
        ({"ticket": "   "}, "ticket"),
        ({"justification": ""}, "justification"),
        ({"justification": "  \n\t  "}, "justification"),
        ({"justification": DROP}, "justification"),
        ({"duration_seconds": 0}, "duration_seconds"),
        ({"duration_seconds": -60}, "duration_seconds"),
        ({"duration_seconds": 8 * 3600 + 1}, "duration_seconds"),
        ({"duration_seconds": 30}, "duration_seconds"),
        ({"duration_seconds": "abc"}, "duration_seconds"),
        ({"duration_seconds": 10.5}, "duration_seconds"),
        ({"state": "approved"}, "state"),
        ({"expires_at": "2099-01-01T00:00:00Z"}, "expires_at"),
        ({"approver": "legal1a"}, "approver"),
    ],
    ids=[
        "unknown entitlement",
        "purpose not allowed by the entitlement",
        "purpose unknown",
        "missing ticket where required",
        "blank ticket where required",
        "empty justification",
        "whitespace-only justification",
        "missing justification",
        "duration zero",
        "duration negative",
        "duration above the maximum",
        "duration below JIT_MIN_GRANT_SECONDS",
        "duration not a number",
        "duration a fraction",
        "client-sent state",
        "client-sent expires_at",
        "client-sent approver",
    ],
)
def test_it_refuses_bad_input_naming_the_field_and_stores_nothing(cast, narrow, settings, changes, field):
    settings.JIT_MIN_GRANT_SECONDS = 60
    events_before = AuditEvent.objects.count()

    response = post(cast["requester"], f"{API}/requests/", valid_body(**changes))

    assert response.status_code == 400, response.content
    body = response.json()
    assert field in body["errors"]
    assert body["code"]
    assert field in body["detail"]
    assert not AccessRequest.objects.exists()
    assert AuditEvent.objects.count() == events_before


def test_it_refuses_a_json_list_body_and_stores_nothing(cast, entitlement):
    response = post(cast["requester"], f"{API}/requests/", [valid_body()])

    assert response.status_code == 400
    assert response.json()["errors"]
    assert not AccessRequest.objects.exists()


@pytest.mark.parametrize("who", ["legal1a", "auditor"])
def test_it_refuses_a_request_from_outside_the_requester_group(cast, entitlement, who):
    response = post(cast[who], f"{API}/requests/", valid_body())

    assert response.status_code == 403
    assert response.json()["code"] == "not_in_requester_group"
    assert not AccessRequest.objects.exists()


def test_it_treats_an_entitlement_the_caller_cannot_see_as_unknown(cast, entitlement):
    # The outsider may not even learn that the entitlement exists: same answer as a made-up slug.
    response = post(cast["outsider"], f"{API}/requests/", valid_body())
    made_up = post(cast["outsider"], f"{API}/requests/", valid_body(entitlement="no-such-thing"))

    assert response.status_code == made_up.status_code == 400
    assert "entitlement" in response.json()["errors"]
    assert response.json()["code"] == made_up.json()["code"]
    assert not AccessRequest.objects.exists()


# --- listing and visibility ---------------------------------------------------------------------


def test_it_lists_only_the_callers_own_requests_by_default(cast, entitlement):
    mine = submit(cast["requester"], entitlement)
    theirs = submit(cast["admin2"], entitlement)

    assert listed_ids(get(cast["requester"], f"{API}/requests/")) == [mine.pk]
    assert listed_ids(get(cast["admin2"], f"{API}/requests/")) == [theirs.pk]
    # An approver's default list is their own requests too; their inbox is ?awaiting=me.
    assert listed_ids(get(cast["legal1a"], f"{API}/requests/")) == []


def test_it_lists_a_request_as_awaiting_only_the_open_stages_group(cast, pending):
    def awaiting(name: str) -> list[int]:
        return listed_ids(get(cast[name], f"{API}/requests/", awaiting="me"))

    assert awaiting("legal1a") == [pending.pk]
    assert awaiting("legal1b") == [pending.pk]
    assert awaiting("legal2") == []

    approve_through(pending, cast["legal1a"])

    assert awaiting("legal1a") == []
    assert awaiting("legal1b") == []
    assert awaiting("legal2") == [pending.pk]
    assert awaiting("legal2b") == [pending.pk]


def test_it_leaves_the_approvers_own_request_out_of_their_inbox(cast, entitlement):
    add_group(cast["requester"], "legal-l1")
    own = submit(cast["requester"], entitlement)
    other = submit(cast["admin2"], entitlement)

    assert listed_ids(get(cast["requester"], f"{API}/requests/", awaiting="me")) == [other.pk]
    assert listed_ids(get(cast["legal1a"], f"{API}/requests/", awaiting="me")) == [other.pk, own.pk]


def test_it_leaves_a_request_out_of_the_inbox_once_the_approver_decided(cast, entitlement):
    ApprovalStage.objects.filter(entitlement=entitlement, order=1).update(required_approvals=2)
    request = approve_through(submit(cast["requester"], entitlement), cast["legal1a"])
    assert request.current_stage == 1  # the stage still waits for a second approval

    assert listed_ids(get(cast["legal1a"], f"{API}/requests/", awaiting="me")) == []
    assert listed_ids(get(cast["legal1b"], f"{API}/requests/", awaiting="me")) == [request.pk]


@pytest.mark.parametrize("reader", ["auditor", "secadmin"])
def test_it_lists_every_request_to_auditors_and_security_admins(cast, entitlement, reader):
    first = submit(cast["requester"], entitlement)
    second = submit(cast["admin2"], entitlement)

    assert listed_ids(get(cast[reader], f"{API}/requests/")) == [second.pk, first.pk]
    assert get(cast[reader], request_url(first)).status_code == 200


def test_it_filters_requests_by_state_entitlement_and_requester(cast, entitlement, narrow):
    pending_mine = submit(cast["requester"], entitlement)
    withdrawn_mine = services.request_withdraw(submit(cast["requester"], entitlement), acting_user=cast["requester"])
    narrow_theirs = submit(cast["admin2"], narrow, purpose="auditing", duration_seconds=600)
    auditor = cast["auditor"]

    assert listed_ids(get(auditor, f"{API}/requests/", state="withdrawn")) == [withdrawn_mine.pk]
    assert listed_ids(get(auditor, f"{API}/requests/", state="pending")) == [narrow_theirs.pk, pending_mine.pk]
    assert listed_ids(get(auditor, f"{API}/requests/", entitlement="dkm-narrow")) == [narrow_theirs.pk]
    assert listed_ids(get(auditor, f"{API}/requests/", requester="requester")) == [withdrawn_mine.pk, pending_mine.pk]
    assert listed_ids(get(auditor, f"{API}/requests/", requester="requester", state="pending")) == [pending_mine.pk]
    assert listed_ids(get(auditor, f"{API}/requests/", requester="nobody")) == []
    # A filter never widens what the caller may see.
    assert listed_ids(get(cast["requester"], f"{API}/requests/", requester="admin2")) == []


@pytest.mark.parametrize("name, value", [("state", "bogus"), ("awaiting", "you")])
def test_it_refuses_an_unknown_filter_value_naming_the_filter(cast, pending, name, value):
    response = get(cast["auditor"], f"{API}/requests/", **{name: value})
    assert response.status_code == 400
    assert name in response.json()["errors"]


def test_it_paginates_requests_with_a_cursor(cast, entitlement):
    made = [submit(cast["requester"], entitlement).pk for _ in range(3)]
    client = client_for(cast["requester"])

    first = client.get(f"{API}/requests/", {"page_size": 2})
    assert first.status_code == 200
    page = first.json()
    assert {"results", "next"} <= set(page)
    assert [row["id"] for row in page["results"]] == [made[2], made[1]]
    assert page["next"]

    second = client.get(page["next"]).json()
    assert [row["id"] for row in second["results"]] == [made[0]]
    assert second["next"] is None


def test_it_hides_another_users_request(cast, pending):
    assert get(cast["admin2"], request_url(pending)).status_code == 404
    assert get(cast["requester"], request_url(pending)).status_code == 200


@pytest.mark.parametrize("url", [f"{API}/requests/999999/", f"{API}/requests/not-a-number/", f"{API}/grants/999999/"])
def test_it_answers_404_in_the_contract_error_shape(cast, url):
    # API.md: errors are {"detail", "code"}; a 404 must not name the model it did not find.
    response = get(cast["requester"], url)
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found.", "code": "not_found"}


def test_it_shows_a_request_to_the_approvers_of_its_entitlement(cast, pending):
    for name in ["legal1a", "legal2"]:
        response = get(cast[name], request_url(pending))
        assert response.status_code == 200
        assert response.json()["digest"] == pending.digest


def test_it_keeps_a_request_with_the_approver_group_frozen_at_submission(cast, pending, entitlement):
    # The stage's group is changed while the request waits: the request still belongs to the
    # original group's approvers, and the new group's members neither see nor decide it.
    newcomer = make_user("legal-newcomer", "legal-l1-new")
    ApprovalStage.objects.filter(entitlement=entitlement, order=1).update(
        approver_group=Group.objects.get(name="legal-l1-new")
    )

    assert get(newcomer, request_url(pending)).status_code == 404
    assert pending.pk not in listed_ids(get(newcomer, f"{API}/requests/", awaiting="me"))
    assert post(newcomer, request_url(pending, "approve")).status_code == 404
    assert not Decision.objects.filter(request=pending).exists()

    assert get(cast["legal1a"], request_url(pending)).status_code == 200
    assert pending.pk in listed_ids(get(cast["legal1a"], f"{API}/requests/", awaiting="me"))
    response = post(cast["legal1a"], request_url(pending, "approve"))
    assert response.status_code == 200, response.content
    assert response.json()["current_stage"] == 2


def make_stale(request: AccessRequest) -> None:
    """Move the request's pending TTL into the past, as if no sweep had run yet."""
    AccessRequest.objects.filter(pk=request.pk).update(pending_expires_at=the_past())


def test_it_filters_a_request_past_its_pending_ttl_as_expired(cast, pending):
    # Time-based truth at read time (STYLE rule 4): the filter must agree with the detail, as the
    # grant filter does for grants.
    make_stale(pending)

    assert get(cast["requester"], request_url(pending)).json()["state"] == "expired"
    assert listed_ids(get(cast["auditor"], f"{API}/requests/", state="expired")) == [pending.pk]
    assert listed_ids(get(cast["auditor"], f"{API}/requests/", state="pending")) == []


def test_it_leaves_a_request_past_its_pending_ttl_out_of_the_inbox(cast, pending):
    # Deciding it would be refused with 409 request_expired, so it is not awaiting anyone.
    make_stale(pending)

    assert listed_ids(get(cast["legal1a"], f"{API}/requests/", awaiting="me")) == []
    response = post(cast["legal1a"], request_url(pending, "approve"))
    assert response.status_code == 409
    assert response.json()["code"] == "request_expired"


# --- decisions ----------------------------------------------------------------------------------


def test_it_approves_the_open_stage_with_matching_stage_and_digest(cast, pending):
    response = post(
        cast["legal1a"], request_url(pending, "approve"), {"comment": "ok", "stage": 1, "digest": pending.digest}
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["state"] == "pending"
    assert body["current_stage"] == 2
    stage1, stage2 = body["stages"]
    assert (stage1["state"], stage2["state"]) == ("approved", "open")
    [decision] = stage1["decisions"]
    assert DECISION_FIELDS <= set(decision)
    assert (decision["approver"], decision["decision"], decision["comment"]) == ("legal1a", "approve", "ok")
    assert stage2["decisions"] == []

    stored = Decision.objects.get(request=pending)
    assert (stored.approver, stored.stage_order, stored.decision, stored.digest) == (
        cast["legal1a"],
        1,
        "approve",
        pending.digest,
    )
    pending.refresh_from_db()
    assert (pending.state, pending.current_stage) == ("pending", 2)
    assert events("decision.approved", actor=cast["legal1a"]) == 1


def test_it_approves_without_stage_and_digest_for_api_clients(cast, pending):
    response = post(cast["legal1a"], request_url(pending, "approve"))
    assert response.status_code == 200, response.content
    assert Decision.objects.filter(request=pending, stage_order=1).count() == 1


def test_it_refuses_a_decision_meant_for_the_previous_stage(cast, pending):
    # legal1b reviewed stage 1 and also sits in legal-l2; legal1a approves stage 1 first. The
    # decision legal1b meant for stage 1 must not land on stage 2.
    add_group(cast["legal1b"], "legal-l2")
    approve_through(pending, cast["legal1a"])

    response = post(cast["legal1b"], request_url(pending, "approve"), {"stage": 1, "digest": pending.digest})

    assert response.status_code == 409
    assert response.json()["code"] == "stage_mismatch"
    assert not Decision.objects.filter(approver=cast["legal1b"]).exists()
    pending.refresh_from_db()
    assert (pending.state, pending.current_stage) == ("pending", 2)
    assert events("decision.refused.stage_mismatch", actor=cast["legal1b"], outcome="denied") == 1


def test_it_refuses_a_decision_on_a_digest_the_request_does_not_have(cast, pending):
    response = post(cast["legal1a"], request_url(pending, "approve"), {"stage": 1, "digest": "0" * 64})

    assert response.status_code == 409
    assert response.json()["code"] == "digest_mismatch"
    assert not Decision.objects.exists()
    pending.refresh_from_db()
    assert pending.current_stage == 1


def test_it_refuses_self_approval_and_audits_the_attempt(cast, entitlement):
    requester = cast["requester"]
    add_group(requester, "legal-l1")
    request = submit(requester, entitlement)

    response = post(requester, request_url(request, "approve"), {"stage": 1, "digest": request.digest})

    assert response.status_code == 403
    assert response.json()["code"] == "self_approval"
    assert not Decision.objects.exists()
    request.refresh_from_db()
    assert (request.state, request.current_stage) == ("pending", 1)
    refused = AuditEvent.objects.get(action="decision.refused.self_approval")
    assert (refused.actor, refused.outcome, refused.target_id) == (requester, "denied", str(request.pk))


def test_it_refuses_an_approver_outside_the_open_stages_group(cast, pending):
    response = post(cast["legal2"], request_url(pending, "approve"), {"stage": 1, "digest": pending.digest})

    assert response.status_code == 403
    assert response.json()["code"] == "not_in_stage_group"
    assert not Decision.objects.exists()


def test_it_refuses_a_second_stage_from_the_same_approver(cast, pending):
    legal1a = cast["legal1a"]
    add_group(legal1a, "legal-l2")
    assert post(legal1a, request_url(pending, "approve"), {"stage": 1, "digest": pending.digest}).status_code == 200

    response = post(legal1a, request_url(pending, "approve"), {"stage": 2, "digest": pending.digest})

    assert response.status_code == 403
    assert response.json()["code"] == "already_decided"
    assert Decision.objects.filter(request=pending).count() == 1
    pending.refresh_from_db()
    assert (pending.state, pending.current_stage) == ("pending", 2)


@pytest.mark.parametrize("reader", ["auditor", "secadmin"])
@pytest.mark.parametrize("action", ["approve", "deny"])
def test_it_refuses_decisions_from_readers_who_are_not_approvers(cast, pending, reader, action):
    # They see every request, but neither role may decide by that role alone.
    response = post(cast[reader], request_url(pending, action), {"comment": "looks fine"})

    assert response.status_code == 403
    assert response.json()["code"] == "not_in_stage_group"
    assert not Decision.objects.exists()


@pytest.mark.parametrize("body", [{}, {"comment": ""}, {"comment": "   "}], ids=["absent", "empty", "blank"])
def test_it_requires_a_comment_to_deny(cast, pending, body):
    response = post(cast["legal1a"], request_url(pending, "deny"), body)

    assert response.status_code == 400
    assert "comment" in response.json()["errors"]
    assert not Decision.objects.exists()
    pending.refresh_from_db()
    assert pending.state == "pending"


def test_it_denies_with_a_comment(cast, pending):
    response = post(cast["legal1a"], request_url(pending, "deny"), {"comment": "No ticket context", "stage": 1})

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["state"] == "denied"
    assert body["decided_at"] is not None
    assert body["grant"] is None
    stage1, stage2 = body["stages"]
    assert (stage1["state"], stage2["state"]) == ("denied", "waiting")
    assert [(d["approver"], d["decision"], d["comment"]) for d in stage1["decisions"]] == [
        ("legal1a", "deny", "No ticket context")
    ]
    pending.refresh_from_db()
    assert pending.state == RequestState.DENIED
    assert not Grant.objects.exists()
    assert events("request.denied", target_id=str(pending.pk)) == 1


def _denied(request: AccessRequest, cast: dict[str, Any]) -> None:
    services.request_decide(request, approver=cast["legal1a"], decision="deny", comment="no")


def _withdrawn(request: AccessRequest, cast: dict[str, Any]) -> None:
    services.request_withdraw(request, acting_user=cast["requester"])


def _approved(request: AccessRequest, cast: dict[str, Any]) -> None:
    approve_through(request, cast["legal1a"], cast["legal2"])


@pytest.mark.parametrize("action", ["approve", "deny"])
@pytest.mark.parametrize("finish", [_denied, _withdrawn, _approved], ids=["denied", "withdrawn", "approved"])
def test_it_refuses_to_decide_a_request_that_is_no_longer_pending(cast, pending, finish, action):
    finish(pending, cast)
    pending.refresh_from_db()
    final_state, decisions = pending.state, Decision.objects.count()

    response = post(cast["legal1b"], request_url(pending, action), {"comment": "late"})

    assert response.status_code == 409
    assert response.json()["code"] == "not_pending"
    assert Decision.objects.count() == decisions
    pending.refresh_from_db()
    assert pending.state == final_state


def test_it_lets_the_requester_withdraw(cast, pending):
    response = post(cast["requester"], request_url(pending, "withdraw"))

    assert response.status_code == 200, response.content
    assert response.json()["state"] == "withdrawn"
    assert response.json()["decided_at"] is not None
    pending.refresh_from_db()
    assert pending.state == RequestState.WITHDRAWN
    assert listed_ids(get(cast["legal1a"], f"{API}/requests/", awaiting="me")) == []
    assert events("request.withdrawn", actor=cast["requester"]) == 1


@pytest.mark.parametrize("who, status", [("admin2", 404), ("legal1a", 403), ("secadmin", 403), ("auditor", 403)])
def test_it_refuses_withdrawal_by_anyone_but_the_requester(cast, pending, who, status):
    response = post(cast[who], request_url(pending, "withdraw"))

    assert response.status_code == status
    pending.refresh_from_db()
    assert pending.state == RequestState.PENDING
    assert events("request.withdrawn") == 0


def test_it_treats_a_repeated_withdrawal_as_a_no_op(cast, pending):
    first = post(cast["requester"], request_url(pending, "withdraw"))
    second = post(cast["requester"], request_url(pending, "withdraw"))

    assert (first.status_code, second.status_code) == (200, 200)
    assert second.json()["state"] == "withdrawn"
    assert second.json()["decided_at"] == first.json()["decided_at"]
    assert events("request.withdrawn") == 1


def test_it_refuses_to_withdraw_an_approved_request(cast, granted):
    response = post(cast["requester"], request_url(granted, "withdraw"))

    assert response.status_code == 409
    granted.refresh_from_db()
    assert granted.state == RequestState.APPROVED
    assert events("request.withdrawn") == 0


def test_it_refuses_to_withdraw_a_request_that_reads_expired(cast, pending):
    # Terminal states never change: a request past its pending TTL reads "expired" and must stay so,
    # exactly as a decision on it is refused with 409.
    make_stale(pending)

    response = post(cast["requester"], request_url(pending, "withdraw"))

    assert response.status_code == 409
    pending.refresh_from_db()
    assert pending.state != RequestState.WITHDRAWN
    assert get(cast["requester"], request_url(pending)).json()["state"] == "expired"


# --- grants -------------------------------------------------------------------------------------


def test_it_shows_the_grant_on_the_approved_request(cast, pending):
    approve_through(pending, cast["legal1a"])
    response = post(cast["legal2"], request_url(pending, "approve"), {"stage": 2, "digest": pending.digest})

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["state"] == "approved"
    assert body["current_stage"] is None
    assert body["decided_at"] is not None
    assert [stage["state"] for stage in body["stages"]] == ["approved", "approved"]
    grant = Grant.objects.get(request=pending)
    shown = body["grant"]
    assert GRANT_FIELDS <= set(shown)
    assert {name: shown[name] for name in ["id", "request", "user", "entitlement", "security_group", "state"]} == {
        "id": grant.pk,
        "request": pending.pk,
        "user": "requester",
        "entitlement": "dkm-test",
        "security_group": "dkm-test",
        "state": "active",
    }
    assert (shown["ended_at"], shown["ended_by"], shown["end_reason"]) == (None, None, "")
    starts_at, expires_at = parse_datetime(shown["starts_at"]), parse_datetime(shown["expires_at"])
    assert (starts_at, expires_at) == (grant.starts_at, grant.expires_at)
    assert expires_at - starts_at == timedelta(seconds=pending.duration_seconds)
    assert get(cast["requester"], grant_url(grant)).json() == shown


def test_it_lists_own_grants_and_every_grant_to_readers(cast, entitlement):
    mine = grant_for(cast["requester"], entitlement, cast)
    theirs = grant_for(cast["admin2"], entitlement, cast)

    assert listed_ids(get(cast["requester"], f"{API}/grants/")) == [mine.pk]
    assert listed_ids(get(cast["admin2"], f"{API}/grants/")) == [theirs.pk]
    assert listed_ids(get(cast["legal1a"], f"{API}/grants/")) == []
    for reader in ["auditor", "secadmin"]:
        assert listed_ids(get(cast[reader], f"{API}/grants/")) == [theirs.pk, mine.pk]


def test_it_filters_grants_by_the_state_a_reader_sees(cast, entitlement):
    active = grant_for(cast["requester"], entitlement, cast)
    revoked = services.grant_revoke(grant_for(cast["requester"], entitlement, cast), acting_user=cast["requester"])
    overdue = make_overdue(grant_for(cast["requester"], entitlement, cast))

    for reader in ["requester", "auditor"]:
        assert listed_ids(get(cast[reader], f"{API}/grants/", state="active")) == [active.pk]
        assert listed_ids(get(cast[reader], f"{API}/grants/", state="expired")) == [overdue.pk]
        assert listed_ids(get(cast[reader], f"{API}/grants/", state="revoked")) == [revoked.pk]
    response = get(cast["auditor"], f"{API}/grants/", state="bogus")
    assert response.status_code == 400
    assert "state" in response.json()["errors"]


def test_it_reads_an_overdue_grant_as_expired_before_any_task_ran(cast, granted):
    grant = make_overdue(granted.grant)

    response = get(cast["requester"], grant_url(grant))

    assert response.status_code == 200
    assert response.json()["state"] == "expired"
    assert parse_datetime(response.json()["ended_at"]) == grant.expires_at
    assert get(cast["requester"], request_url(granted)).json()["grant"]["state"] == "expired"
    assert listed_ids(get(cast["requester"], f"{API}/grants/", state="expired")) == [grant.pk]
    assert listed_ids(get(cast["requester"], f"{API}/grants/", state="active")) == []
    grant.refresh_from_db()
    assert grant.state == "active"  # nothing ran: the truth is computed on read


def test_it_lets_the_grantee_revoke(cast, granted):
    response = post(cast["requester"], grant_url(granted.grant, "revoke"), {"reason": "done early"})

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["state"], body["ended_by"], body["end_reason"]) == ("revoked", "requester", "done early")
    assert body["ended_at"] is not None
    grant = Grant.objects.get(pk=granted.grant.pk)
    assert (grant.state, grant.ended_by, grant.end_reason) == ("revoked", cast["requester"], "done early")
    assert events("grant.revoked", actor=cast["requester"], grant_id=grant.pk) == 1


def test_it_lets_a_security_admin_revoke_any_grant(cast, granted):
    response = post(cast["secadmin"], grant_url(granted.grant, "revoke"), {"reason": "incident"})

    assert response.status_code == 200, response.content
    assert (response.json()["state"], response.json()["ended_by"]) == ("revoked", "secadmin")
    assert Grant.objects.get(pk=granted.grant.pk).ended_by == cast["secadmin"]


@pytest.mark.parametrize("who, status", [("admin2", 404), ("legal2", 404), ("auditor", 403)])
def test_it_refuses_revocation_by_anyone_else(cast, granted, who, status):
    response = post(cast[who], grant_url(granted.grant, "revoke"), {"reason": "mine now"})

    assert response.status_code == status
    assert Grant.objects.get(pk=granted.grant.pk).state == "active"
    assert events("grant.revoked") == 0


def test_it_treats_a_repeated_revocation_as_a_no_op(cast, granted):
    url = grant_url(granted.grant, "revoke")
    first = post(cast["requester"], url, {"reason": "first"})
    second = post(cast["secadmin"], url, {"reason": "second"})

    assert (first.status_code, second.status_code) == (200, 200)
    assert (second.json()["ended_by"], second.json()["end_reason"]) == ("requester", "first")
    assert events("grant.revoked") == 1


def test_it_refuses_to_revoke_an_overdue_grant_and_expires_it(cast, granted):
    make_overdue(granted.grant)

    response = post(cast["requester"], grant_url(granted.grant, "revoke"), {"reason": "late"})

    assert response.status_code == 409
    assert response.json()["code"] == "not_active"
    assert Grant.objects.get(pk=granted.grant.pk).state == "expired"
    assert events("grant.expired", grant_id=granted.grant.pk) == 1
    assert events("grant.revoked") == 0


# --- the grant credential -----------------------------------------------------------------------


def mint(cast: dict[str, Any], grant: Grant, who: str = "requester") -> Any:
    return post(cast[who], grant_url(grant, "credential"))


def test_it_mints_the_credential_once_for_the_grantee(cast, granted):
    grant = granted.grant
    response = mint(cast, grant)

    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {"credential", "expires_at"}
    assert body["credential"].startswith("jitg_")
    assert parse_datetime(body["expires_at"]) == grant.expires_at
    assert GrantCredential.objects.get().grant == grant

    again = mint(cast, grant)
    assert again.status_code == 409
    assert again.json()["code"] == "already_minted"
    assert GrantCredential.objects.count() == 1
    assert events("credential.minted") == 1


@pytest.mark.parametrize("who, status", [("admin2", 404), ("secadmin", 403), ("auditor", 403)])
def test_it_refuses_the_credential_to_anyone_but_the_grantee(cast, granted, who, status):
    assert mint(cast, granted.grant, who).status_code == status
    assert not GrantCredential.objects.exists()


def test_it_refuses_a_credential_for_a_grant_that_ended(cast, granted):
    services.grant_revoke(granted.grant, acting_user=cast["requester"])
    response = mint(cast, granted.grant)
    assert response.status_code == 409
    assert not GrantCredential.objects.exists()


def test_it_scopes_the_credential_away_from_the_rest_of_the_api(cast, granted):
    credential = bearer(mint(cast, granted.grant).json()["credential"])

    assert credential.get(f"{API}/grants/").status_code == 403
    assert credential.get(grant_url(granted.grant)).status_code == 403
    assert credential.get(f"{API}/requests/").status_code == 403
    assert credential.post(grant_url(granted.grant, "revoke"), {}, format="json").status_code == 403
    assert credential.post(f"{API}/requests/", valid_body(), format="json").status_code == 403
    assert Grant.objects.get(pk=granted.grant.pk).state == "active"
    assert AccessRequest.objects.count() == 1


def test_it_refuses_the_credential_after_revocation(cast, granted):
    credential = bearer(mint(cast, granted.grant).json()["credential"])
    assert credential.get(f"{API}/grants/").status_code == 403  # known, but scoped

    assert post(cast["requester"], grant_url(granted.grant, "revoke")).status_code == 200

    assert credential.get(f"{API}/grants/").status_code == 401
    assert GrantCredential.objects.get().revoked_at is not None


def test_it_refuses_a_killed_credential_even_while_its_grant_runs(cast, granted):
    # Defence in depth: the credential row's own revocation counts, not only the grant's state.
    credential = bearer(mint(cast, granted.grant).json()["credential"])
    GrantCredential.objects.update(revoked_at=clock.now())

    assert credential.get(f"{API}/grants/").status_code == 401
    assert Grant.objects.get(pk=granted.grant.pk).state == "active"


def test_it_refuses_the_credential_from_expires_at_on(cast, granted):
    credential = bearer(mint(cast, granted.grant).json()["credential"])
    assert credential.get(f"{API}/grants/").status_code == 403  # known, but scoped
    # Only the grant's end moves; the grant itself is checked on every use, not just the credential row.
    make_overdue(granted.grant)

    assert credential.get(f"{API}/grants/").status_code == 401


def test_it_never_stores_the_clear_credential(cast, granted):
    token = mint(cast, granted.grant).json()["credential"]

    credential_rows = [str(row) for row in GrantCredential.objects.values()]
    audit_data = [str(row) for row in AuditEvent.objects.values("data", "target_id", "correlation_id")]
    assert len(credential_rows) == 1
    assert not [row for row in credential_rows + audit_data if token in row]
    secret_part = token.removeprefix("jitg_")
    assert not [row for row in credential_rows + audit_data if secret_part[8:] in row]


# --- meta ---------------------------------------------------------------------------------------


def test_it_serves_an_openapi_3_schema_describing_the_contract(cast):
    response = get(cast["requester"], f"{API}/schema/", format="json")

    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    for path in [
        "/api/v1/auth/token/",
        "/api/v1/entitlements/",
        "/api/v1/requests/",
        "/api/v1/requests/{id}/",
        "/api/v1/requests/{id}/approve/",
        "/api/v1/requests/{id}/deny/",
        "/api/v1/requests/{id}/withdraw/",
        "/api/v1/grants/",
        "/api/v1/grants/{id}/",
        "/api/v1/grants/{id}/revoke/",
        "/api/v1/grants/{id}/credential/",
    ]:
        assert path in schema["paths"], path
    assert "post" in schema["paths"]["/api/v1/requests/{id}/approve/"]


def test_it_serves_the_interactive_docs(cast):
    response = get(cast["requester"], f"{API}/docs/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    # The start-up script comes from its own URL, so the page needs no inline script (CSP).
    assert b"/api/v1/docs/?script=" in response.content
    script = get(cast["requester"], f"{API}/docs/?script=")
    assert b"/api/v1/schema/" in script.content


def test_it_answers_the_liveness_probe(db):
    response = APIClient().get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_it_answers_the_readiness_probe_with_database_and_broker(db):
    response = APIClient().get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json()["checks"] == {"database": True, "broker": True, "root_keys": True}


# --- every endpoint: the outsider and the anonymous caller --------------------------------------

ENDPOINTS = [
    ("get", "/api/v1/entitlements/"),
    ("get", "/api/v1/entitlements/dkm-test/"),
    ("get", "/api/v1/requests/"),
    ("get", "/api/v1/requests/?awaiting=me"),
    ("post", "/api/v1/requests/"),
    ("get", "/api/v1/requests/{request}/"),
    ("post", "/api/v1/requests/{pending}/approve/"),
    ("post", "/api/v1/requests/{pending}/deny/"),
    ("post", "/api/v1/requests/{pending}/withdraw/"),
    ("get", "/api/v1/grants/"),
    ("get", "/api/v1/grants/{grant}/"),
    ("post", "/api/v1/grants/{grant}/revoke/"),
    ("post", "/api/v1/grants/{grant}/credential/"),
]


@pytest.fixture
def world(cast: dict[str, Any], entitlement: Entitlement) -> dict[str, Any]:
    """A granted request and a pending one, both belonging to someone else than the caller."""
    granted = approve_through(submit(cast["requester"], entitlement), cast["legal1a"], cast["legal2"])
    pending = submit(cast["admin2"], entitlement)
    return {"request": granted.pk, "grant": granted.grant.pk, "pending": pending.pk}


def snapshot() -> tuple[Any, ...]:
    return (
        list(AccessRequest.objects.order_by("pk").values_list("pk", "state", "current_stage")),
        list(Grant.objects.order_by("pk").values_list("pk", "state")),
        Decision.objects.count(),
        GrantCredential.objects.count(),
    )


def call(client: APIClient, method: str, path: str, world: dict[str, Any]) -> Any:
    url = path.format(**world)
    if method == "get":
        return client.get(url)
    body: dict[str, Any] = {}
    if url.endswith("/requests/"):
        body = valid_body()
    elif url.endswith("/deny/"):
        body = {"comment": "not yours to deny"}
    return client.post(url, body, format="json")


@pytest.mark.parametrize("method, path", ENDPOINTS)
def test_it_answers_anonymous_callers_with_401(world, method, path):
    before = snapshot()

    response = call(APIClient(), method, path, world)

    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert snapshot() == before


@pytest.mark.parametrize("method, path", ENDPOINTS)
def test_it_shows_the_outsider_nothing_and_lets_them_do_nothing(cast, world, method, path):
    before = snapshot()

    response = call(client_for(cast["outsider"]), method, path, world)

    assert snapshot() == before
    if method == "get" and "{" not in path and "/entitlements/dkm-test/" not in path:
        assert response.status_code == 200
        body = response.json()
        assert (body if isinstance(body, list) else body["results"]) == []
    elif path.endswith("/requests/"):
        # Submitting names an entitlement the outsider cannot see: it is refused as unknown.
        assert response.status_code == 400, response.content
        assert "entitlement" in response.json()["errors"]
    else:
        assert response.status_code in (403, 404), response.content
