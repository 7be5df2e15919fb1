"""Writes for accounts: personal API tokens, sign-in records, the authenticator app (TOTP)."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone
from django.utils.crypto import salted_hmac
from django_otp import devices_for_user
from django_otp.plugins.otp_totp.models import TOTPDevice

from jitaccess import clock
from jitaccess.accounts.authentication import SERVICE_TOKEN_PREFIX
from jitaccess.accounts.models import ApiToken, ServiceToken, ServiceTokenScope
from jitaccess.accounts.selectors import groups_requiring_totp
from jitaccess.audit.models import Outcome
from jitaccess.audit.services import audit_record
from jitaccess.errors import Conflict, InvalidInput, NotAllowed
from jitaccess.roles import SECURITY_ADMINS, fresh_group_names
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


# --- service-account tokens ---------------------------------------------------------------------

SECURITY_ADMINS_MANAGE_TOKENS = "Only security admins create and revoke service-account tokens."


def _require_security_admin(user: Any) -> None:
    # Read the groups now: a role removed a second ago no longer counts.
    if SECURITY_ADMINS not in fresh_group_names(user):
        raise NotAllowed(SECURITY_ADMINS_MANAGE_TOKENS)


def service_token_create(
    *, account: Any, name: str, scopes: list[str], days: int, acting_user: Any
) -> tuple[str, ServiceToken]:
    """Mint a token for a service account; the clear token is returned once and never stored.

    Every token expires, at most ``JIT_SERVICE_TOKEN_MAX_DAYS`` days from now.
    """
    _require_security_admin(acting_user)
    name = name.strip()
    if not name or len(name) > 100:
        raise InvalidInput("name", "Say what the token is for (at most 100 characters).")
    unknown = sorted(set(scopes) - set(ServiceTokenScope.values))
    if not scopes or unknown:
        raise InvalidInput(
            "scopes",
            f"Unknown scope {', '.join(unknown)}." if unknown else "Choose at least one scope.",
        )
    limit = settings.JIT_SERVICE_TOKEN_MAX_DAYS
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= limit:
        raise InvalidInput("days", f"A token lives between 1 and {limit} days.")
    token = new_token(SERVICE_TOKEN_PREFIX)
    with transaction.atomic():
        account = get_user_model().objects.filter(pk=account.pk).first()
        if account is None or not account.is_service_account or not account.is_active:
            raise InvalidInput("account", "Tokens are only for active service accounts.")
        now = clock.now()
        record = ServiceToken.objects.create(
            account=account,
            name=name,
            scopes=sorted(set(scopes)),
            created_by=acting_user,
            token_hash=token_digest(token),
            prefix=token[: len(SERVICE_TOKEN_PREFIX) + 6],
            created_at=now,
            expires_at=now + timedelta(days=days),
        )
        audit_record(
            "auth.service_token_created",
            actor=acting_user,
            target_type="service_token",
            target_id=record.pk,
            data={
                "account": account.get_username(),
                "name": record.name,
                "prefix": record.prefix,
                "scopes": record.scopes,
                "expires_at": record.expires_at.isoformat(),
            },
        )
    return token, record


def service_token_revoke(token: ServiceToken, *, acting_user: Any) -> ServiceToken:
    """Revoke a service-account token at once. Revoking a revoked token changes nothing."""
    _require_security_admin(acting_user)
    with transaction.atomic():
        token = ServiceToken.objects.select_for_update().select_related("account").get(pk=token.pk)
        if token.revoked_at is None:
            token.revoked_at = clock.now()
            token.revoked_by = acting_user
            token.save(update_fields=["revoked_at", "revoked_by"])
            audit_record(
                "auth.service_token_revoked",
                actor=acting_user,
                target_type="service_token",
                target_id=token.pk,
                data={"account": token.account.get_username(), "name": token.name, "prefix": token.prefix},
            )
    return token


def second_factor_problem(user: Any, otp: str) -> bool:
    """True when the user has a confirmed TOTP device and ``otp`` does not match it."""
    devices = list(devices_for_user(user, confirmed=True))
    if not devices:
        return False
    # verify_token records the last used time step, so a code cannot be replayed.
    return not otp or not any(device.verify_token(otp) for device in devices)


def session_event_record(
    action: str, *, user: Any, reason: str | None = None, details: dict[str, Any] | None = None
) -> None:
    """Audit a sign-in or sign-out (``auth.login`` / ``auth.logout``) in its own transaction.

    ``reason`` says why a session ended when the person did not end it (``idle``); ``details``
    how a sign-in was made (``method``: ``password`` or ``oidc``).
    """
    data = {**(details or {}), **({"reason": reason} if reason else {})}
    with transaction.atomic():
        audit_record(
            action,
            actor=user,
            target_type="user",
            target_id=user.get_username()[:64],
            data=data or None,
        )


def username_for_records(username: str) -> tuple[str, bool]:
    """How a typed user name may be kept (audit trail, lockout records), and whether it is an account's.

    A name that is no account's is kept only as a keyed hash: people type passwords into the
    user-name field, and no record may hold them. The hash still groups repeated attempts.
    """
    known = get_user_model().objects.filter(username=username).exists()
    if known:
        return username, True
    return "hmac:" + salted_hmac("jitaccess.audit.username", username).hexdigest()[:32], False


def login_failed_record(*, username: str, reason: str, method: str = "password") -> None:
    """Audit a failed sign-in, in its own transaction: there is no state change to undo.

    Unknown names are kept only as a keyed hash (``username_for_records``).
    """
    target, known = username_for_records(username)
    target = target[:64]
    with transaction.atomic():
        audit_record(
            "auth.login_failed",
            outcome=Outcome.DENIED,
            target_type="user",
            target_id=target,
            data={"reason": reason, "known_user": known, "method": method},
        )


# --- authenticator app (TOTP) -------------------------------------------------------------------

TOTP_DEVICE_NAME = "Authenticator app"
CODE_NOT_ACCEPTED = "That code was not accepted. Enter the code your authenticator app shows now; each code works once."


def totp_code_problem(devices: list[TOTPDevice], code: str) -> str | None:
    """None when ``code`` is a current code of one of ``devices``, else what to tell the person.

    verify_token records the time step it accepted (no replay) and counts failures: django-otp
    then makes the device wait, longer after each wrong code. Callers commit that before refusing,
    or a rollback would undo the wait.
    """
    waits = []
    for device in devices:
        allowed, details = device.verify_is_allowed()
        if not allowed:
            waits.append((details or {}).get("locked_until"))
        elif code and device.verify_token(code):
            return None
    if waits and len(waits) == len(devices) and all(waits):
        seconds = max(1, math.ceil((min(waits) - timezone.now()).total_seconds()))
        return (
            f"Too many wrong codes in a row: wait {seconds} second{'' if seconds == 1 else 's'}, "
            "then enter the code your app shows then."
        )
    return CODE_NOT_ACCEPTED


def totp_enrolment_start(*, user: Any) -> TOTPDevice:
    """A new unconfirmed device, with a new key, for the person to set up.

    Their other unconfirmed devices go: never confirmed, they were never usable, and a device the
    person did not start themselves (one added in the admin, with a key someone else saw) must not
    be the one they confirm. The caller shows the key to one session only.
    """
    with transaction.atomic():
        TOTPDevice.objects.filter(user=user, confirmed=False).delete()
        return TOTPDevice.objects.create(user=user, name=TOTP_DEVICE_NAME, confirmed=False)


def totp_enrolment_confirm(device: TOTPDevice, *, user: Any, code: str, replacing: bool = False) -> TOTPDevice:
    """Confirm ``device`` with a current code from it. A person who already has an authenticator
    may confirm a new one only as a replacement (``replacing``: they gave a code of the old one
    first); the old one then goes, in the same transaction."""
    with transaction.atomic():
        device = TOTPDevice.objects.select_for_update().filter(pk=device.pk, user=user, confirmed=False).first()
        if device is None:
            raise Conflict("This set-up has ended: it was finished or replaced. Start again from the page.")
        existing = list(TOTPDevice.objects.select_for_update().filter(user=user, confirmed=True))
        if existing and not replacing:
            raise Conflict("You already have an authenticator app. Replace it with a code from it first.")
        problem = totp_code_problem([device], code)
        if problem is None:
            if existing:
                TOTPDevice.objects.filter(pk__in=[old.pk for old in existing]).delete()
                audit_record(
                    "auth.second_factor_removed",
                    actor=user,
                    target_type="user",
                    target_id=user.get_username()[:64],
                    data={"devices": len(existing), "reason": "replaced"},
                )
            device.confirmed = True
            device.save(update_fields=["confirmed"])
            audit_record(
                "auth.second_factor_enrolled",
                actor=user,
                target_type="user",
                target_id=user.get_username()[:64],
                data={"device": device.pk, "replaced": bool(existing)},
            )
    if problem is not None:
        raise InvalidInput("code", problem)
    return device


def totp_replacement_start(*, user: Any, code: str) -> TOTPDevice:
    """A new unconfirmed device for a person who proved, with a code, that they hold the current one."""
    with transaction.atomic():
        existing = list(TOTPDevice.objects.select_for_update().filter(user=user, confirmed=True))
        if not existing:
            raise Conflict("You have no authenticator app to replace; set one up instead.")
        problem = totp_code_problem(existing, code)
    if problem is not None:
        raise InvalidInput("code", problem)
    return totp_enrolment_start(user=user)


def totp_device_remove(*, user: Any, code: str) -> None:
    """Remove the person's authenticator, with a current code from it. Refused while one of their
    groups requires one: they may replace it, never go without."""
    groups = groups_requiring_totp(user)
    if groups:
        raise NotAllowed(
            f"Your group{'s' if len(groups) > 1 else ''} {', '.join(groups)} require"
            f"{'' if len(groups) > 1 else 's'} an authenticator app, so it cannot be removed. "
            "To move it to a new phone, replace it instead."
        )
    with transaction.atomic():
        existing = list(TOTPDevice.objects.select_for_update().filter(user=user, confirmed=True))
        if not existing:
            raise Conflict("You have no authenticator app to remove.")
        problem = totp_code_problem(existing, code)
        if problem is None:
            TOTPDevice.objects.filter(user=user).delete()
            audit_record(
                "auth.second_factor_removed",
                actor=user,
                target_type="user",
                target_id=user.get_username()[:64],
                data={"devices": len(existing), "reason": "removed"},
            )
    if problem is not None:
        raise InvalidInput("code", problem)


# --- lockout and re-authentication ---------------------------------------------------------------


def lockout_record(*, username: str, failures: int | None) -> None:
    """Audit that sign-in for ``username`` (from one address) is locked after repeated failures."""
    target, known = username_for_records(username)
    with transaction.atomic():
        audit_record(
            "auth.locked_out",
            outcome=Outcome.DENIED,
            target_type="user",
            target_id=target[:64],
            data={
                "failures": failures,
                "known_user": known,
                "minutes": int(settings.AXES_COOLOFF_TIME.total_seconds() // 60),
            },
        )


def reauth_record(*, user: Any, second_factor: bool, method: str = "password") -> None:
    with transaction.atomic():
        audit_record(
            "auth.reauthenticated",
            actor=user,
            target_type="user",
            target_id=user.get_username()[:64],
            data={"second_factor": second_factor, "method": method},
        )


def reauth_failed_record(*, user: Any, reason: str, method: str = "password") -> None:
    with transaction.atomic():
        audit_record(
            "auth.reauth_failed",
            actor=user,
            outcome=Outcome.DENIED,
            target_type="user",
            target_id=user.get_username()[:64],
            data={"reason": reason, "method": method},
        )
