from __future__ import annotations

from typing import Any

from django.contrib.auth import authenticate
from django.core.management import call_command
from django.db.models import Max
from django.test import RequestFactory
from rest_framework.test import APIClient

from approvals.models import Entitlement, StandingMembership
from jitaccess.accounts.models import User
from jitaccess.audit.models import AuditEvent
from keys.models import KeyRing, KeyState


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
        sign_in = RequestFactory().post("/login/")  # the lockout counts every attempt against a request
        assert authenticate(sign_in, username=username, password=settings.JIT_DEMO_PASSWORD) == user
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


def demo_keys_state() -> tuple[Any, ...]:
    ring = KeyRing.objects.get(name="exchange-connected-accounts")
    rows = ring.secrets.order_by("pk").values_list(
        "pk", "name", "kind", "metadata", "envelope", "key_version", "value_version"
    )
    return (
        ring.pk,
        ring.rotated_at,
        list(ring.versions.order_by("version").values_list("pk", "version", "state")),
        [(*row[:4], bytes(row[4]), *row[5:]) for row in rows],
    )


def test_seed_demo_seeds_the_demo_key_ring_once_and_its_service_account_can_reveal(db, settings):
    call_command("seed_demo")
    first = demo_keys_state()
    events_after_first = AuditEvent.objects.aggregate(last=Max("seq"))["last"]
    call_command("seed_demo")

    assert demo_keys_state() == first  # same ids, versions, envelopes and value versions
    assert not AuditEvent.objects.filter(seq__gt=events_after_first, action__startswith="secret.").exists()
    assert not AuditEvent.objects.filter(seq__gt=events_after_first, action__startswith="key").exists()
    ring = KeyRing.objects.get(name="exchange-connected-accounts")
    assert ring.security_group.name == "dkm-exchange"
    assert ring.versions.filter(state=KeyState.PRIMARY).count() == 1
    demo_secrets = list(ring.secrets.order_by("pk"))
    assert len(demo_secrets) >= 2
    for secret in demo_secrets:
        assert secret.kind == "connected_account"
        assert {"provider", "account_address", "credential_type"} <= set(secret.metadata)

    api = APIClient()
    login = {"username": "svc-exchange", "password": settings.JIT_DEMO_PASSWORD}
    token = api.post("/api/v1/auth/token/", login, format="json").json()["token"]
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    revealed = api.post(f"/api/v1/secrets/{demo_secrets[0].pk}/reveal/", {"reason": "demo check"}, format="json")

    assert revealed.status_code == 200, revealed.content
    assert revealed.json()["value"].strip()
    assert revealed.json()["grant"] is None
    assert AuditEvent.objects.filter(action="secret.revealed", actor__username="svc-exchange").count() == 1
    admin = APIClient()
    admin.force_authenticate(User.objects.get(username="admin1"))
    refused = admin.post(f"/api/v1/secrets/{demo_secrets[0].pk}/reveal/", {"reason": "demo check"}, format="json")
    assert refused.status_code == 403  # a datacenter admin needs a grant first
