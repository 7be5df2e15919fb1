"""Pure rules of approvals/workflow.py (the state machine itself is property-tested elsewhere)."""

from __future__ import annotations

import pytest

from approvals.workflow import reserved_group_problem
from jitaccess import roles


@pytest.mark.parametrize("name", [roles.SECURITY_ADMINS, roles.AUDITORS])
def test_it_reserves_the_policy_and_audit_roles(name):
    problem = reserved_group_problem(name)
    assert problem is not None and name in problem


@pytest.mark.parametrize("name", [roles.DATACENTER_ADMINS, "legal-l1", "security-admins-eu", ""])
def test_it_leaves_every_other_group_usable(name):
    assert reserved_group_problem(name) is None
