from __future__ import annotations

from typing import Any

from rest_framework import authentication, exceptions

from jitaccess import clock
from jitaccess.accounts.models import ApiToken, ServiceToken
from jitaccess.accounts.permissions import second_factor_satisfied
from jitaccess.accounts.selectors import second_factor_missing
from jitaccess.lookups import unique_or_none
from jitaccess.tokens import last_used_touch, token_digest

# Service-account tokens start with this; personal tokens with "jit_", grant credentials "jitg_".
SERVICE_TOKEN_PREFIX = "jits_"
INVALID_TOKEN = "Invalid or expired token."

ENROL_FIRST = (
    "Your groups require an authenticator app (TOTP) and you have not set one up. "
    "Sign in with a browser and set it up at /account/two-factor/ first."
)


def bearer_token(request: Any) -> str | None:
    header = authentication.get_authorization_header(request).split()
    if not header or header[0].lower() != b"bearer":
        return None
    if len(header) != 2:
        raise exceptions.AuthenticationFailed("Malformed Authorization header.")
    try:
        return header[1].decode()
    except UnicodeError:
        raise exceptions.AuthenticationFailed("Malformed Authorization header.") from None


class BearerAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer <personal token>``. Expiry and revocation are checked on every use."""

    def authenticate(self, request: Any) -> tuple[Any, ApiToken] | None:
        token = bearer_token(request)
        if token is None:
            return None
        now = clock.now()
        record = unique_or_none(
            ApiToken.objects.select_related("user").filter(
                token_hash=token_digest(token), revoked_at__isnull=True, expires_at__gt=now
            )
        )
        # One message for unknown, expired and revoked tokens: nothing to learn from the answer.
        if record is None or not record.user.is_active:
            raise exceptions.AuthenticationFailed(INVALID_TOKEN)
        # A token issued before a group began to require TOTP is no way around enrolling.
        if second_factor_missing(record.user):
            raise exceptions.PermissionDenied(ENROL_FIRST)
        last_used_touch(record, now)
        return record.user, record

    def authenticate_header(self, request: Any) -> str:
        return 'Bearer realm="api"'


class ServiceTokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer jits_…``: a service-account token, authenticating as the account.

    What it may do is its scopes' question, asked by the permission on each view
    (``IsAuthenticatedPerson``). Expiry, revocation and the account's state are checked on every use.
    """

    def authenticate(self, request: Any) -> tuple[Any, ServiceToken] | None:
        token = bearer_token(request)
        if token is None or not token.startswith(SERVICE_TOKEN_PREFIX):
            return None
        now = clock.now()
        record = unique_or_none(
            ServiceToken.objects.select_related("account").filter(
                token_hash=token_digest(token), revoked_at__isnull=True, expires_at__gt=now
            )
        )
        # The same answer as for a personal token: unknown, expired, revoked and a deactivated
        # account are indistinguishable.
        if record is None or not record.account.is_active or not record.account.is_service_account:
            raise exceptions.AuthenticationFailed(INVALID_TOKEN)
        last_used_touch(record, now)
        return record.account, record

    def authenticate_header(self, request: Any) -> str:
        return 'Bearer realm="api"'


class SecondFactorSessionAuthentication(authentication.SessionAuthentication):
    """DRF's session authentication, minus sessions that skipped the user's second factor.

    Such a session (opened by a password-only form, or ``force_login``) counts as no
    authentication at all, so the caller gets the same 401 / 403 as an anonymous one. The session
    of someone whose groups require an authenticator they have not set up is refused with a 403
    that says so.
    """

    def authenticate(self, request: Any) -> tuple[Any, None] | None:
        result = super().authenticate(request)
        if result is None or not second_factor_satisfied(result[0]):
            return None
        if second_factor_missing(result[0]):
            raise exceptions.PermissionDenied(ENROL_FIRST)
        return result
