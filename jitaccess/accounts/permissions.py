from __future__ import annotations

from typing import Any

from django_otp import user_has_device
from rest_framework.permissions import BasePermission

from jitaccess.roles import is_auditor, is_security_admin


class IsAuthenticatedPerson(BasePermission):
    """The default: an authenticated user acting with their own session or personal token.

    A grant credential authenticates too, but is scoped: only views that declare
    ``accepts_grant_credential = True`` (revealing the grant's secrets) take it. So is a
    service-account token: only actions a view lists in ``service_token_scopes`` take it, and only
    with that action's scope; a view that lists none refuses service tokens altogether.
    """

    message = "Authentication with a personal token or session is required here."

    def has_permission(self, request: Any, view: Any) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        if getattr(request.auth, "is_grant_credential", False):
            return getattr(view, "accepts_grant_credential", False)
        if getattr(request.auth, "is_service_token", False):
            scope = service_token_scope_needed(request, view)
            if scope is None:
                self.message = "Service-account tokens cannot be used here."
                return False
            if scope not in request.auth.scopes:
                self.message = f"This service-account token lacks the scope {scope}."
                return False
        return True


def service_token_scope_needed(request: Any, view: Any) -> str | None:
    """The scope a service-account token needs for this call, or None when it may not make it.

    Keyed by the viewset's action, or by the HTTP method for a plain API view.
    """
    scopes = getattr(view, "service_token_scopes", None) or {}
    return scopes.get(getattr(view, "action", None) or request.method.lower())


class IsAuditor(IsAuthenticatedPerson):
    """Members of ``auditors`` only, with their own session or token: the audit trail, its
    exports and evidence packs are theirs to read. Other roles that may read the approval
    workflow (security admins) still do not read the trail through these endpoints."""

    message = "Only auditors may read the audit trail."

    def has_permission(self, request: Any, view: Any) -> bool:
        return super().has_permission(request, view) and is_auditor(request.user)


def second_factor_satisfied(user: Any) -> bool:
    """May this session user act? Users with a confirmed TOTP device only once a code verified this
    session (django-otp's OTPMiddleware provides ``is_verified``); users without a device always.

    Without the middleware there is no ``is_verified``, and a device owner is refused: fail closed.
    """
    is_verified = getattr(user, "is_verified", None)
    if callable(is_verified) and is_verified():
        return True
    return not user_has_device(user, confirmed=True)


class IsSecurityAdmin(IsAuthenticatedPerson):
    """Members of ``security-admins``, with their own session or personal token."""

    message = "Only security admins may do this."

    def has_permission(self, request: Any, view: Any) -> bool:
        return super().has_permission(request, view) and is_security_admin(request.user)
