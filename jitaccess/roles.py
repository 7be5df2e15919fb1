"""The named roles of DESIGN.md §2, as Django groups, and predicates on them."""

from __future__ import annotations

from typing import Any

DATACENTER_ADMINS = "datacenter-admins"
AUDITORS = "auditors"
SECURITY_ADMINS = "security-admins"


def group_names(user: Any) -> frozenset[str]:
    """The user's group names, cached on the user object for the rest of the request."""
    if not getattr(user, "is_authenticated", False):
        return frozenset()
    cached = getattr(user, "_jit_group_names", None)
    if cached is None:
        cached = frozenset(user.groups.values_list("name", flat=True))
        user._jit_group_names = cached
    return cached


def fresh_group_names(user: Any) -> frozenset[str]:
    """Group names read from the database now: decisions must not trust a cached role."""
    return frozenset(user.groups.values_list("name", flat=True))


def is_auditor(user: Any) -> bool:
    return AUDITORS in group_names(user)


def is_security_admin(user: Any) -> bool:
    return SECURITY_ADMINS in group_names(user)


def can_read_everything(user: Any) -> bool:
    return is_auditor(user) or is_security_admin(user) or getattr(user, "is_superuser", False)
