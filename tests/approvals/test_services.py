"""The workflow services: invariants 1–5 of DESIGN.md §7 and the request state machine."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.db import IntegrityError, transaction

from approvals import selectors, services
from approvals.models import AccessRequest, ApprovalStage, Decision, Grant, RequestState, SecurityGroup
from jitaccess.audit.models import AuditEvent
from jitaccess.errors import Conflict, InvalidInput, NotAllowed
from tests.conftest import approve_through, submit


def events(action: str) -> int:
    return AuditEvent.objects.filter(action=action).count()


# --- invariant 1: no self-approval ---------------------------------------------------------------


@pytest.mark.parametrize("stage_group", ["legal-l1", "legal-l2"])
def test_it_refuses_self_approval_at_every_stage(cast, entitlement, stage_group):
    requester = cast["requester"]
    requester.groups.add(Group.objects.get(name=stage_group))
    request = submit(requester, entitlement)
    if stage_group == "legal-l2":
        request = approve_through(request, cast["legal1a"])
    with pytest.raises(NotAllowed) as refused:
        services.request_decide(request, approver=requester, decision="approve")
    assert refused.value.code == "self_approval"
    assert not Decision.objects.filter(approver=requester).exists()
    assert events("decision.refused.self_approval") == 1
    request.refresh_from_db()
    assert request.state == RequestState.PENDING


def test_it_refuses_self_denial_too(cast, entitlement):
    cast["requester"].groups.add(Group.objects.get(name="legal-l1"))
    request = submit(cast["requester"], entitlement)
    with pytest.raises(NotAllowed):
        services.request_decide(request, approver=cast["requester"], decision="deny", comment="no")
    request.refresh_from_db()
    assert request.state == RequestState.PENDING


# --- invariant 2: one stage per person, group checked at decision time ---------------------------


def test_it_refuses_a_second_stage_from_the_same_person(cast, pending):
    legal1a = cast["legal1a"]
    legal1a.groups.add(Group.objects.get(name="legal-l2"))
    request = approve_through(pending, legal1a)
    with pytest.raises(NotAllowed) as refused:
        services.request_decide(request, approver=legal1a, decision="approve")
    assert refused.value.code == "already_decided"
    assert Decision.objects.filter(request=request).count() == 1


def test_it_checks_the_approver_group_at_decision_time(cast, pending):
    legal1a = cast["legal1a"]
    legal1a.groups.remove(Group.objects.get(name="legal-l1"))
    with pytest.raises(NotAllowed) as refused:
        services.request_decide(pending, approver=legal1a, decision="approve")
    assert refused.value.code == "not_in_stage_group"


def test_it_refuses_approvers_outside_the_open_stage_group(cast, pending):
    for person in ("legal2", "auditor", "secadmin", "admin2", "outsider"):
        with pytest.raises(NotAllowed):
            services.request_decide(pending, approver=cast[person], decision="approve")
    assert Decision.objects.count() == 0


# --- invariant 3: strict order; any deny ends the request ----------------------------------------


def test_it_decides_stages_in_order(cast, pending):
    with pytest.raises(NotAllowed):
        services.request_decide(pending, approver=cast["legal2"], decision="approve")
    request = approve_through(pending, cast["legal1a"])
    assert request.current_stage == 2
    with pytest.raises(Conflict) as wrong_stage:
        services.request_decide(request, approver=cast["legal2"], decision="approve", stage=1)
    assert wrong_stage.value.code == "stage_mismatch"
    request = approve_through(request, cast["legal2"])
    assert request.state == RequestState.APPROVED


def test_it_refuses_a_decision_signed_on_another_digest(cast, pending):
    with pytest.raises(Conflict) as mismatch:
        services.request_decide(pending, approver=cast["legal1a"], decision="approve", digest="0" * 64)
    assert mismatch.value.code == "digest_mismatch"
    assert Decision.objects.count() == 0


def test_it_records_the_digest_each_approver_signed(cast, pending):
    approve_through(pending, cast["legal1a"], cast["legal2"])
    assert set(Decision.objects.values_list("digest", flat=True)) == {pending.digest}


def test_it_ends_the_request_on_any_deny(cast, pending):
    request = approve_through(pending, cast["legal1a"])
    request = services.request_decide(request, approver=cast["legal2"], decision="deny", comment="Not justified")
    assert request.state == RequestState.DENIED
    assert not Grant.objects.exists()
    with pytest.raises(Conflict):
        services.request_decide(request, approver=cast["legal2b"], decision="approve")


def test_it_requires_a_comment_to_deny(cast, pending):
    with pytest.raises(InvalidInput) as missing:
        services.request_decide(pending, approver=cast["legal1a"], decision="deny", comment="  ")
    assert missing.value.field == "comment"


def test_it_waits_for_the_quorum_of_a_stage(cast, entitlement):
    ApprovalStage.objects.filter(entitlement=entitlement, order=1).update(required_approvals=2)
    entitlement.refresh_from_db()
    request = submit(cast["requester"], entitlement)
    request = approve_through(request, cast["legal1a"])
    assert request.current_stage == 1
    request = approve_through(request, cast["legal1b"])
    assert request.current_stage == 2


def test_it_judges_a_request_by_the_policy_at_submission(cast, pending, entitlement):
    # Adding a third stage after submission must not change the request in flight.
    ApprovalStage.objects.create(
        entitlement=entitlement, order=3, name="Late", approver_group=Group.objects.get(name="auditors")
    )
    request = approve_through(pending, cast["legal1a"], cast["legal2"])
    assert request.state == RequestState.APPROVED
    assert [s["order"] for s in request.policy_snapshot["stages"]] == [1, 2]


def test_it_grants_the_security_group_frozen_at_submission(cast, pending, entitlement):
    # Re-pointing the entitlement while the request waits must not redirect what the approvers
    # signed for: the grant opens the group the request named.
    original = entitlement.security_group
    entitlement.security_group = SecurityGroup.objects.create(name="dkm-elsewhere")
    entitlement.save()

    request = approve_through(pending, cast["legal1a"], cast["legal2"])

    assert request.state == RequestState.APPROVED
    assert request.grant.security_group == original
    assert selectors.has_access(cast["requester"], original)
    assert not selectors.has_access(cast["requester"], entitlement.security_group)


# --- invariant 4 (database side); the concurrent side is in test_concurrency ---------------------


@pytest.mark.postgres
def test_the_database_refuses_a_second_grant_for_one_request(cast, granted):
    grant = granted.grant
    with pytest.raises(IntegrityError), transaction.atomic():
        Grant.objects.create(
            request=granted,
            user=grant.user,
            security_group=grant.security_group,
            entitlement=grant.entitlement,
            starts_at=grant.starts_at,
            expires_at=grant.expires_at,
        )


@pytest.mark.postgres
def test_the_database_refuses_a_self_approval_written_directly(cast, pending):
    with pytest.raises(IntegrityError), transaction.atomic():
        Decision.objects.create(
            request=pending,
            stage_order=1,
            approver=cast["requester"],
            decision="approve",
            digest=pending.digest,
            decided_at=pending.created_at,
        )


@pytest.mark.postgres
def test_the_database_refuses_a_second_decision_by_one_person(cast, pending):
    approve_through(pending, cast["legal1a"])
    with pytest.raises(IntegrityError), transaction.atomic():
        Decision.objects.create(
            request=pending,
            stage_order=2,
            approver=cast["legal1a"],
            decision="approve",
            digest=pending.digest,
            decided_at=pending.created_at,
        )


# --- invariant 5: duration in (0, max]; the server computes expires_at ---------------------------


@pytest.mark.parametrize("duration", [0, -5, 8 * 3600 + 1, 10**8])
def test_it_refuses_durations_outside_the_policy(cast, entitlement, duration):
    with pytest.raises(InvalidInput) as bad:
        submit(cast["requester"], entitlement, duration_seconds=duration)
    assert bad.value.field == "duration_seconds"
    assert not AccessRequest.objects.exists()


def test_it_refuses_durations_below_the_floor(cast, entitlement, settings):
    settings.JIT_MIN_GRANT_SECONDS = 60
    with pytest.raises(InvalidInput):
        submit(cast["requester"], entitlement, duration_seconds=59)
    assert submit(cast["requester"], entitlement, duration_seconds=60).duration_seconds == 60


def test_it_computes_expires_at_from_the_final_approval(cast, entitlement):
    request = submit(cast["requester"], entitlement, duration_seconds=8 * 3600)
    request = approve_through(request, cast["legal1a"], cast["legal2"])
    grant = request.grant
    assert grant.expires_at - grant.starts_at == timedelta(seconds=8 * 3600)
    assert grant.starts_at >= request.created_at


def test_it_uses_the_default_duration_when_none_is_given(cast, entitlement):
    assert submit(cast["requester"], entitlement, duration_seconds=None).duration_seconds == 3600


# --- the rest of the request lifecycle -----------------------------------------------------------


@pytest.mark.parametrize(
    "field,overrides",
    [
        ("purpose", {"purpose": "curiosity"}),
        ("justification", {"justification": "   "}),
        ("ticket", {"ticket": ""}),
    ],
)
def test_it_refuses_bad_requests_naming_the_field(cast, entitlement, field, overrides):
    with pytest.raises(InvalidInput) as bad:
        submit(cast["requester"], entitlement, **overrides)
    assert bad.value.field == field
    assert not AccessRequest.objects.exists()
    assert not AuditEvent.objects.filter(action="request.submitted").exists()


def test_only_the_requester_group_may_request(cast, entitlement):
    with pytest.raises(NotAllowed):
        submit(cast["outsider"], entitlement)


def test_it_lets_the_requester_withdraw_once(cast, pending):
    with pytest.raises(NotAllowed):
        services.request_withdraw(pending, acting_user=cast["admin2"])
    request = services.request_withdraw(pending, acting_user=cast["requester"])
    assert request.state == RequestState.WITHDRAWN
    services.request_withdraw(request, acting_user=cast["requester"])
    assert events("request.withdrawn") == 1
    with pytest.raises(Conflict):
        services.request_decide(request, approver=cast["legal1a"], decision="approve")


def test_it_cannot_withdraw_an_approved_request(cast, granted):
    with pytest.raises(Conflict):
        services.request_withdraw(granted, acting_user=cast["requester"])


def test_a_stale_pending_request_expires_when_someone_tries_to_decide(cast, pending):
    AccessRequest.objects.filter(pk=pending.pk).update(pending_expires_at=pending.created_at)
    with pytest.raises(Conflict) as stale:
        services.request_decide(pending, approver=cast["legal1a"], decision="approve")
    assert stale.value.code == "request_expired"
    pending.refresh_from_db()
    assert pending.state == RequestState.EXPIRED
    assert events("request.expired") == 1
    assert not Decision.objects.exists()


def test_terminal_requests_never_change(cast, pending):
    denied = services.request_decide(pending, approver=cast["legal1a"], decision="deny", comment="no")
    with pytest.raises(Conflict):
        services.request_withdraw(denied, acting_user=cast["requester"])
    denied.refresh_from_db()
    assert denied.state == RequestState.DENIED


# --- standing membership ------------------------------------------------------------------------


def test_people_cannot_be_standing_members(cast, security_group):
    with pytest.raises(InvalidInput) as refused:
        services.standing_member_add(security_group, user=cast["secadmin"], acting_user=cast["secadmin"])
    assert refused.value.code == "not_service_account"
    assert not security_group.standing.filter(user=cast["secadmin"]).exists()


def test_service_accounts_can_be_standing_members(cast, security_group):
    services.standing_member_add(security_group, user=cast["svc"], acting_user=cast["secadmin"])
    services.standing_member_add(security_group, user=cast["svc"], acting_user=cast["secadmin"])
    assert security_group.standing.filter(user=cast["svc"]).count() == 1
    assert events("security_group.member_added") == 1
