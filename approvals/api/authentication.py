from __future__ import annotations

from typing import Any

from rest_framework import authentication, exceptions

from approvals.models import GrantCredential, GrantState
from approvals.services import GRANT_CREDENTIAL_PREFIX
from jitaccess import clock
from jitaccess.accounts.authentication import bearer_token
from jitaccess.lookups import unique_or_none
from jitaccess.tokens import last_used_touch, token_digest


class GrantCredentialAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer jitg_…``: the grant's credential, authenticating as the grantee.

    Checked against the clock on every call (invariant 6): refused from ``expires_at`` on, and
    after revocation, whether or not any background task has run.
    """

    def authenticate(self, request: Any) -> tuple[Any, GrantCredential] | None:
        token = bearer_token(request)
        if token is None or not token.startswith(GRANT_CREDENTIAL_PREFIX):
            return None
        now = clock.now()
        credential = unique_or_none(
            GrantCredential.objects.select_related("grant__user", "grant__security_group").filter(
                token_hash=token_digest(token),
                revoked_at__isnull=True,
                expires_at__gt=now,
                grant__state=GrantState.ACTIVE,
                grant__expires_at__gt=now,
            )
        )
        if credential is None or not credential.grant.user.is_active:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked credential.")
        last_used_touch(credential, now)
        return credential.grant.user, credential

    def authenticate_header(self, request: Any) -> str:
        return 'Bearer realm="api"'
