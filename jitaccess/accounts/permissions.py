from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission


class IsAuthenticatedPerson(BasePermission):
    """The default: an authenticated user acting with their own session or personal token.

    A grant credential authenticates too, but is scoped: only views that declare
    ``accepts_grant_credential = True`` (revealing the grant's secrets) take it.
    """

    message = "Authentication with a personal token or session is required here."

    def has_permission(self, request: Any, view: Any) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        if getattr(request.auth, "is_grant_credential", False):
            return getattr(view, "accepts_grant_credential", False)
        return True
