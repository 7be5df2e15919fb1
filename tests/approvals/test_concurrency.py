"""Invariant 4 and the idempotence of expiry under real concurrency, on PostgreSQL.

Each thread has its own connection and the calls are released together by a barrier, so they
really race for the row locks; counts are read back from the database, not from the answers.
"""

from __future__ import annotations

import pytest

from approvals import expiry, services
from approvals.models import AccessRequest, ApprovalStage, Decision, Grant, GrantState, RequestState
from jitaccess import clock
from jitaccess.audit.models import AuditEvent
from jitaccess.audit.verification import verify_chain
from jitaccess.errors import Conflict, DomainError
from tests.conftest import approve_through, make_user, submit
from tests.threads import run_concurrently

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

APPROVERS = 16
ROUNDS = 30


@pytest.fixture
def crowd(cast):
    """Sixteen stage-2 approvers."""
    return [make_user(f"l2-{i:02d}", "legal-l2") for i in range(APPROVERS)]


def test_concurrent_final_approvals_issue_exactly_one_grant(cast, entitlement, crowd):
    for _ in range(ROUNDS):
        request = approve_through(submit(cast["requester"], entitlement), cast["legal1a"])
        results = run_all_approving(request, crowd)
        successes = [r for r in results if isinstance(r, AccessRequest)]
        assert len(successes) == 1, results
        assert all(isinstance(r, Conflict) for r in results if not isinstance(r, AccessRequest))
        request.refresh_from_db()
        assert request.state == RequestState.APPROVED
        assert Grant.objects.filter(request=request).count() == 1
        assert AuditEvent.objects.filter(action="grant.issued", target_id=str(request.grant.pk)).count() == 1
        assert AuditEvent.objects.filter(action="request.approved", target_id=str(request.pk)).count() == 1
        assert Decision.objects.filter(request=request, stage_order=2).count() == 1
    assert verify_chain().ok


def test_concurrent_approvals_of_a_quorum_stage_make_one_transition(cast, entitlement, crowd):
    ApprovalStage.objects.filter(entitlement=entitlement, order=2).update(required_approvals=3)
    for _ in range(ROUNDS):
        request = approve_through(submit(cast["requester"], entitlement), cast["legal1a"])
        results = run_all_approving(request, crowd)
        assert sum(isinstance(r, AccessRequest) for r in results) == 3
        assert Decision.objects.filter(request=request, stage_order=2).count() == 3
        assert Grant.objects.filter(request=request).count() == 1
        assert AuditEvent.objects.filter(action="request.approved", target_id=str(request.pk)).count() == 1


def test_approve_deny_and_withdraw_racing_end_in_one_outcome(cast, entitlement):
    deniers = [make_user(f"l2-deny-{i}", "legal-l2") for i in range(4)]
    outcomes = set()
    for _ in range(ROUNDS):
        request = approve_through(submit(cast["requester"], entitlement), cast["legal1a"])
        calls = [lambda: services.request_withdraw(request, acting_user=cast["requester"])]
        calls += [lambda: services.request_decide(request, approver=cast["legal2"], decision="approve")]
        calls += [
            (lambda d=d: services.request_decide(request, approver=d, decision="deny", comment="no")) for d in deniers
        ]
        results = run_concurrently(calls)
        assert all(isinstance(r, (AccessRequest, DomainError)) for r in results), results
        request.refresh_from_db()
        endings = AuditEvent.objects.filter(
            target_type="access_request",
            target_id=str(request.pk),
            action__in=["request.withdrawn", "request.denied", "request.approved"],
        )
        assert endings.count() == 1
        assert endings.get().action == f"request.{request.state}"
        assert Grant.objects.filter(request=request).count() == (1 if request.state == RequestState.APPROVED else 0)
        outcomes.add(request.state)
    assert outcomes <= {RequestState.APPROVED, RequestState.DENIED, RequestState.WITHDRAWN}


def test_concurrent_sweeps_and_tasks_expire_each_grant_once(cast, entitlement):
    grants = [
        approve_through(submit(cast["requester"], entitlement), cast["legal1a"], cast["legal2"]).grant for _ in range(8)
    ]
    Grant.objects.filter(pk__in=[g.pk for g in grants]).update(expires_at=clock.now())
    calls = [expiry.expiry_sweep for _ in range(4)]
    calls += [(lambda g=g: expiry.grant_expire(g.pk)) for g in grants for _ in range(2)]
    results = run_concurrently(calls)
    assert not [r for r in results if isinstance(r, Exception)], results
    assert Grant.objects.filter(state=GrantState.EXPIRED).count() == 8
    for grant in grants:
        assert AuditEvent.objects.filter(action="grant.expired", grant_id=grant.pk).count() == 1
    assert verify_chain().ok


def run_all_approving(request, approvers):
    return run_concurrently(
        [(lambda a=a: services.request_decide(request, approver=a, decision="approve")) for a in approvers]
    )
