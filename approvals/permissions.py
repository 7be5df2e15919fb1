"""Predicates shared by the HTML and API layers."""

from __future__ import annotations

from typing import Any

from approvals.models import AccessRequest, Grant
from jitaccess.roles import is_security_admin


def can_revoke_grant(user: Any, grant: Grant) -> bool:
    return user.pk == grant.user_id or is_security_admin(user)


def can_withdraw_request(user: Any, request: AccessRequest) -> bool:
    return user.pk == request.requester_id
