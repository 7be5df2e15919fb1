"""Demo users, groups and the dkm-exchange entitlement (API.md, "Demo data"). Idempotent.

Called by ``manage.py seed_demo`` (keys/management/commands/seed_demo.py), which adds the keys.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from approvals.models import ApprovalStage, Entitlement, Purpose, SecurityGroup
from approvals.services import standing_member_add
from jitaccess import roles

DEMO_USERS = [
    # username, groups, is_staff, is_service_account
    ("admin1", [roles.DATACENTER_ADMINS], False, False),
    ("admin2", [roles.DATACENTER_ADMINS], False, False),
    ("legal1a", ["legal-l1"], False, False),
    ("legal1b", ["legal-l1"], False, False),
    ("legal2", ["legal-l2"], False, False),
    ("auditor", [roles.AUDITORS], True, False),
    ("secadmin", [roles.SECURITY_ADMINS], True, False),
    ("svc-exchange", [], False, True),
]


def seed_approvals_demo(password: str) -> dict[str, Any]:
    """The demo users and the dkm-exchange entitlement; returns the users by name."""
    users = _users(password)
    _entitlement(users)
    return users


def _users(password: str) -> dict[str, Any]:
    user_model = get_user_model()
    users = {}
    for username, group_list, is_staff, is_service in DEMO_USERS:
        user, _ = user_model.objects.get_or_create(username=username)
        user.is_staff = is_staff
        user.is_service_account = is_service
        user.email = f"{username}@example.test"
        user.set_password(password)
        user.save()
        user.groups.set([Group.objects.get_or_create(name=name)[0] for name in group_list])
        users[username] = user
    return users


def _entitlement(users: dict[str, Any]) -> None:
    security_group, _ = SecurityGroup.objects.update_or_create(
        name="dkm-exchange",
        defaults={"description": "May decrypt the credentials of connected Exchange / mail accounts."},
    )
    standing_member_add(security_group, user=users["svc-exchange"], acting_user=None)
    entitlement, _ = Entitlement.objects.update_or_create(
        slug="dkm-exchange",
        defaults={
            "name": "DKM: Exchange connected accounts",
            "description": "Temporary membership of dkm-exchange to debug, troubleshoot or audit.",
            "security_group": security_group,
            "requester_group": Group.objects.get(name=roles.DATACENTER_ADMINS),
            "purposes": list(Purpose.values),
            "requires_ticket": True,
            "default_duration_seconds": 3600,
            "max_duration_seconds": 8 * 3600,
            "pending_ttl_seconds": 24 * 3600,
            "is_active": True,
        },
    )
    for order, name, group in [(1, "Legal review", "legal-l1"), (2, "Legal sign-off", "legal-l2")]:
        ApprovalStage.objects.update_or_create(
            entitlement=entitlement,
            order=order,
            defaults={"name": name, "approver_group": Group.objects.get(name=group), "required_approvals": 1},
        )
    entitlement.stages.exclude(order__in=[1, 2]).delete()
