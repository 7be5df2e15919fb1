"""Property test: any sequence of submissions, decisions and withdrawals by a mixed cast keeps
invariants 1–4, and the services agree with a small reference model of DESIGN.md §6."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from django.contrib.auth.models import Group
from django.db import transaction
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from approvals import services
from approvals.models import AccessRequest, ApprovalStage, Decision, Entitlement, Grant, SecurityGroup
from jitaccess import roles
from jitaccess.errors import Conflict, DomainError, NotAllowed
from tests.conftest import make_user

# name -> groups; requesters that are also approvers make self-approval reachable.
PEOPLE = {
    "p0": {roles.DATACENTER_ADMINS, "legal-l1"},
    "p1": {roles.DATACENTER_ADMINS, "legal-l2"},
    "p2": {"legal-l1"},
    "p3": {"legal-l1", "legal-l2"},
    "p4": {"legal-l2"},
    "p5": {"legal-l1"},
    "p6": set(),
}
STAGES = [(1, "legal-l1", 2), (2, "legal-l2", 1)]  # order, group, quorum


@dataclass
class Expected:
    requester: str
    state: str = "pending"
    stage: int = 1
    approvals: dict[int, int] = field(default_factory=dict)
    deciders: set[str] = field(default_factory=set)


class Workflow(RuleBasedStateMachine):
    @initialize()
    def setup(self) -> None:
        # Each example runs in a savepoint that teardown rolls back: a clean database per example.
        self.atomic = transaction.atomic()
        self.atomic.__enter__()
        self.users = {name: make_user(name, *groups) for name, groups in PEOPLE.items()}
        group = SecurityGroup.objects.create(name="prop")
        self.entitlement = Entitlement.objects.create(
            slug="prop",
            name="prop",
            security_group=group,
            requester_group=Group.objects.get(name=roles.DATACENTER_ADMINS),
            purposes=["debugging"],
            requires_ticket=False,
            default_duration_seconds=600,
            max_duration_seconds=3600,
        )
        for order, group_name, quorum in STAGES:
            ApprovalStage.objects.create(
                entitlement=self.entitlement,
                order=order,
                name=f"stage {order}",
                approver_group=Group.objects.get(name=group_name),
                required_approvals=quorum,
            )
        self.requests: list[tuple[AccessRequest, Expected]] = []

    def teardown(self) -> None:
        if hasattr(self, "atomic"):
            transaction.set_rollback(True)
            self.atomic.__exit__(None, None, None)

    @rule(who=st.sampled_from(["p0", "p1"]))
    def submit(self, who: str) -> None:
        request = services.request_submit(
            requester=self.users[who], entitlement=self.entitlement, purpose="debugging", justification="j"
        )
        self.requests.append((request, Expected(requester=who)))

    @precondition(lambda self: self.requests)
    @rule(data=st.data(), who=st.sampled_from(sorted(PEOPLE)), approve=st.booleans())
    def decide(self, data: st.DataObject, who: str, approve: bool) -> None:
        request, model = data.draw(st.sampled_from(self.requests))
        predicted = self._predict(model, who)
        try:
            services.request_decide(
                request, approver=self.users[who], decision="approve" if approve else "deny", comment="c"
            )
            outcome: type[DomainError] | None = None
        except DomainError as exc:
            outcome = type(exc)
        assert outcome is predicted, (who, model, outcome)
        if predicted is None:
            self._apply(model, who, approve)

    @precondition(lambda self: self.requests)
    @rule(data=st.data(), who=st.sampled_from(sorted(PEOPLE)))
    def withdraw(self, data: st.DataObject, who: str) -> None:
        request, model = data.draw(st.sampled_from(self.requests))
        try:
            services.request_withdraw(request, acting_user=self.users[who])
        except NotAllowed:
            assert who != model.requester
            return
        except Conflict:
            assert model.state not in ("pending", "withdrawn")
            return
        assert who == model.requester and model.state in ("pending", "withdrawn")
        model.state = "withdrawn"

    def _predict(self, model: Expected, who: str) -> type[DomainError] | None:
        if model.state != "pending":
            return Conflict
        if who == model.requester or who in model.deciders:
            return NotAllowed
        if STAGES[model.stage - 1][1] not in PEOPLE[who]:
            return NotAllowed
        return None

    def _apply(self, model: Expected, who: str, approve: bool) -> None:
        model.deciders.add(who)
        if not approve:
            model.state = "denied"
            return
        model.approvals[model.stage] = model.approvals.get(model.stage, 0) + 1
        if model.approvals[model.stage] >= STAGES[model.stage - 1][2]:
            if model.stage == len(STAGES):
                model.state = "approved"
            else:
                model.stage += 1

    @invariant()
    def the_database_matches_the_model(self) -> None:
        for request, model in getattr(self, "requests", []):
            request.refresh_from_db()
            assert request.state == model.state
            if model.state == "pending":
                assert request.current_stage == model.stage
            assert Grant.objects.filter(request=request).exists() == (model.state == "approved")

    @invariant()
    def no_one_decides_their_own_request_or_two_stages(self) -> None:
        for request, _ in getattr(self, "requests", []):
            decisions = list(Decision.objects.filter(request=request).order_by("id"))
            approvers = [d.approver_id for d in decisions]
            assert request.requester_id not in approvers
            assert len(approvers) == len(set(approvers))
            # Stages in order: decision stage orders never go back.
            orders = [d.stage_order for d in decisions]
            assert orders == sorted(orders)


@pytest.mark.django_db
def test_any_sequence_of_actions_keeps_the_workflow_invariants():
    run_state_machine_as_test(
        Workflow,
        settings=settings(
            max_examples=40,
            stateful_step_count=20,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
