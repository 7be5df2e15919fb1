"""The shared cast and builders for the test-suite.

Cast: ``requester`` (datacenter admin), ``admin2`` (another one), ``legal1a`` / ``legal1b``
(stage 1), ``legal2`` / ``legal2b`` (stage 2), ``auditor``, ``secadmin``, ``svc`` (service
account, standing member of the group), and ``outsider`` (no groups at all).
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection
from rest_framework.test import APIClient

from approvals import services
from approvals.models import AccessRequest, ApprovalStage, Entitlement, Purpose, SecurityGroup
from jitaccess import roles


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    # pytest-django's live server is one thread for the rest of the session once started; tests that
    # need a single-threaded process (the audit verification's parallel walk forks) run before it.
    items.sort(key=lambda item: "live_server" in getattr(item, "fixturenames", ()))
    # PostgreSQL-only tests must never be silently skipped: on another database they fail loudly.
    engine = settings.DATABASES["default"]["ENGINE"]
    if "postgresql" in engine:
        return
    for item in items:
        if item.get_closest_marker("postgres"):
            item.add_marker(pytest.mark.xfail(reason="needs PostgreSQL", run=False, strict=True))
            if os.environ.get("CI"):
                raise pytest.UsageError("CI must run the suite on PostgreSQL (set DATABASE_URL)")


@pytest.fixture(autouse=True)
def checkpoint_sink(tmp_path: Any, settings: Any) -> Any:
    """Each test gets its own checkpoint sink: checkpoints name events of one test's chain."""
    settings.JIT_AUDIT_SINK = str(tmp_path / "audit-checkpoints.jsonl")
    return tmp_path / "audit-checkpoints.jsonl"


def make_user(username: str, *groups: str, **extra: Any) -> Any:
    user = get_user_model().objects.create_user(username=username, password="pw-" + username, **extra)
    user.groups.set([Group.objects.get_or_create(name=name)[0] for name in groups])
    return user


@pytest.fixture
def cast(db: Any) -> dict[str, Any]:
    people = {
        "requester": make_user("requester", roles.DATACENTER_ADMINS),
        "admin2": make_user("admin2", roles.DATACENTER_ADMINS),
        "legal1a": make_user("legal1a", "legal-l1"),
        "legal1b": make_user("legal1b", "legal-l1"),
        "legal2": make_user("legal2", "legal-l2"),
        "legal2b": make_user("legal2b", "legal-l2"),
        "auditor": make_user("auditor", roles.AUDITORS),
        "secadmin": make_user("secadmin", roles.SECURITY_ADMINS),
        "svc": make_user("svc", is_service_account=True),
        "outsider": make_user("outsider"),
    }
    return people


@pytest.fixture
def security_group(db: Any) -> SecurityGroup:
    return SecurityGroup.objects.create(name="dkm-test", description="test group")


def make_entitlement(security_group: SecurityGroup, slug: str, name: str) -> Entitlement:
    """The cast's standard policy: datacenter admins request, legal-l1 then legal-l2 approve."""
    ent = Entitlement.objects.create(
        slug=slug,
        name=name,
        security_group=security_group,
        requester_group=Group.objects.get(name=roles.DATACENTER_ADMINS),
        purposes=list(Purpose.values),
        requires_ticket=True,
        default_duration_seconds=3600,
        max_duration_seconds=8 * 3600,
        pending_ttl_seconds=24 * 3600,
    )
    for order, name, approvers in [(1, "Legal review", "legal-l1"), (2, "Legal sign-off", "legal-l2")]:
        ApprovalStage.objects.create(
            entitlement=ent, order=order, name=name, approver_group=Group.objects.get(name=approvers)
        )
    return ent


@pytest.fixture
def entitlement(cast: dict[str, Any], security_group: SecurityGroup) -> Entitlement:
    ent = make_entitlement(security_group, "dkm-test", "DKM test")
    services.standing_member_add(security_group, user=cast["svc"], acting_user=None)
    return ent


def submit(requester: Any, entitlement: Entitlement, **overrides: Any) -> AccessRequest:
    fields = {
        "purpose": "debugging",
        "justification": "Mailbox sync failing for tenant 42",
        "ticket": "INC-1001",
        "duration_seconds": 3600,
    }
    fields.update(overrides)
    return services.request_submit(requester=requester, entitlement=entitlement, **fields)


def approve_through(request: AccessRequest, *approvers: Any) -> AccessRequest:
    for approver in approvers:
        request = services.request_decide(request, approver=approver, decision="approve")
    return request


@pytest.fixture
def pending(cast: dict[str, Any], entitlement: Entitlement) -> AccessRequest:
    return submit(cast["requester"], entitlement)


@pytest.fixture
def granted(cast: dict[str, Any], pending: AccessRequest) -> AccessRequest:
    return approve_through(pending, cast["legal1a"], cast["legal2"])


@pytest.fixture
def api() -> APIClient:
    return APIClient()


def as_user(client: APIClient, user: Any) -> APIClient:
    client.force_authenticate(user=user)
    return client


def is_postgres() -> bool:
    return connection.vendor == "postgresql"
