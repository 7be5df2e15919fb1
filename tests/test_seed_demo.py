from __future__ import annotations

from django.contrib.auth import authenticate
from django.core.management import call_command

from approvals.models import Entitlement, StandingMembership
from jitaccess.accounts.models import User


def test_seed_demo_creates_what_the_contract_names_and_is_idempotent(db, settings):
    call_command("seed_demo")
    call_command("seed_demo")
    expected = {
        "admin1": {"datacenter-admins"},
        "admin2": {"datacenter-admins"},
        "legal1a": {"legal-l1"},
        "legal1b": {"legal-l1"},
        "legal2": {"legal-l2"},
        "auditor": {"auditors"},
        "secadmin": {"security-admins"},
        "svc-exchange": set(),
    }
    for username, groups in expected.items():
        user = User.objects.get(username=username)
        assert set(user.groups.values_list("name", flat=True)) == groups
        assert authenticate(username=username, password=settings.JIT_DEMO_PASSWORD) == user
    assert User.objects.count() == len(expected)
    assert User.objects.get(username="svc-exchange").is_service_account
    assert (
        StandingMembership.objects.filter(user__username="svc-exchange", security_group__name="dkm-exchange").count()
        == 1
    )

    entitlement = Entitlement.objects.get(slug="dkm-exchange")
    assert entitlement.security_group.name == "dkm-exchange"
    assert entitlement.requires_ticket
    assert (entitlement.default_duration_seconds, entitlement.max_duration_seconds) == (3600, 8 * 3600)
    stages = [(s.order, s.name, s.approver_group.name, s.required_approvals) for s in entitlement.stages.all()]
    assert stages == [(1, "Legal review", "legal-l1", 1), (2, "Legal sign-off", "legal-l2", 1)]
