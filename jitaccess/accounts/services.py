"""Writes for accounts: personal API tokens."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils.crypto import salted_hmac
from django_otp import devices_for_user

from jitaccess import clock
from jitaccess.accounts.models import ApiToken
from jitaccess.audit.models import Outcome
from jitaccess.audit.services import audit_record
from jitaccess.tokens import new_token, token_digest

PERSONAL_TOKEN_PREFIX = "jit_"


def api_token_create(*, user: Any) -> tuple[str, ApiToken]:
    """Mint a personal token; the clear token is returned once and never stored."""
    token = new_token(PERSONAL_TOKEN_PREFIX)
    with transaction.atomic():
        now = clock.now()
        record = ApiToken.objects.create(
            user=user,
            token_hash=token_digest(token),
            prefix=token[: len(PERSONAL_TOKEN_PREFIX) + 6],
            created_at=now,
            expires_at=now + timedelta(seconds=settings.JIT_API_TOKEN_SECONDS),
        )
        audit_record(
            "auth.token_issued",
            actor=user,
            target_type="api_token",
            target_id=record.pk,
            data={"prefix": record.prefix, "expires_at": record.expires_at.isoformat()},
        )
    return token, record


def api_token_revoke(token: ApiToken, *, acting_user: Any) -> ApiToken:
    with transaction.atomic():
        token = ApiToken.objects.select_for_update().get(pk=token.pk)
        if token.revoked_at is None:
            token.revoked_at = clock.now()
            token.save(update_fields=["revoked_at"])
            audit_record("auth.token_revoked", actor=acting_user, target_type="api_token", target_id=token.pk)
    return token


def second_factor_problem(user: Any, otp: str) -> bool:
    """True when the user has a confirmed TOTP device and ``otp`` does not match it."""
    devices = list(devices_for_user(user, confirmed=True))
    if not devices:
        return False
    # verify_token records the last used time step, so a code cannot be replayed.
    return not otp or not any(device.verify_token(otp) for device in devices)


def session_event_record(action: str, *, user: Any) -> None:
    """Audit a sign-in or sign-out (``auth.login`` / ``auth.logout``) in its own transaction."""
    with transaction.atomic():
        audit_record(action, actor=user, target_type="user", target_id=user.get_username()[:64])


def login_failed_record(*, username: str, reason: str) -> None:
    """Audit a failed sign-in, in its own transaction: there is no state change to undo.

    A name that is no account's is kept only as a keyed hash: people type passwords into the
    user-name field, and the trail must not hold them. The hash still groups repeated attempts.
    """
    known = get_user_model().objects.filter(username=username).exists()
    target = username[:64] if known else "hmac:" + salted_hmac("jitaccess.audit.username", username).hexdigest()[:32]
    with transaction.atomic():
        audit_record(
            "auth.login_failed",
            outcome=Outcome.DENIED,
            target_type="user",
            target_id=target,
            data={"reason": reason, "known_user": known},
        )
