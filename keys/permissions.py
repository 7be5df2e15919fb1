"""Who may do what with key rings and secrets: predicates shared by the API and the admin."""

from __future__ import annotations

from typing import Any

from approvals.selectors import is_standing_member
from jitaccess.roles import is_security_admin
from keys.models import KeyRing


def can_create_keyrings(user: Any) -> bool:
    return is_security_admin(user)


def can_manage_keyring(user: Any, keyring: KeyRing) -> bool:
    """Rotate, rewrap, archive: security admins, and the ring's own service accounts (automation)."""
    return is_security_admin(user) or is_standing_member(user, keyring.security_group)


def can_write_secrets(user: Any, keyring: KeyRing) -> bool:
    """Create and update secrets: security admins and the ring's standing service accounts."""
    return can_manage_keyring(user, keyring)
