"""Helping someone back in: lifting a sign-in lockout, and resetting a lost authenticator app.

Both are security admins' acts, each with a reason, each one audit event in the same transaction
as the change (fail closed). Without them, "ask a security admin to unlock it" would mean a shell
on the server and a change nobody could see in the audit trail.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django_otp.plugins.otp_totp.models import TOTPDevice

from jitaccess.audit.services import audit_record
from jitaccess.errors import InvalidInput, NotAllowed
from jitaccess.roles import is_security_admin
from keys.secret_rules import storable_text_problem

MAX_REASON_CHARS = 500


@dataclass(frozen=True)
class Lockout:
    username: str
    address: str | None
    failures: int
    until: datetime


def lockouts_active(*, now: datetime) -> list[Lockout]:
    """Accounts whose sign-in is locked now, per address (axes counts name + address together).

    Names that are no account's are kept only as keyed hashes (``hmac:…``); there is nobody to let
    back in, so they are left out.
    """
    cool_off = settings.AXES_COOLOFF_TIME
    rows = (
        AccessAttempt.objects.filter(
            failures_since_start__gte=settings.AXES_FAILURE_LIMIT, attempt_time__gt=now - cool_off
        )
        .exclude(username__startswith="hmac:")
        .order_by("-attempt_time")
    )
    return [
        Lockout(row.username, row.ip_address, row.failures_since_start, row.attempt_time + cool_off) for row in rows
    ]


def _checked(acting_user: Any, username: Any, reason: Any) -> tuple[Any, str]:
    if not is_security_admin(acting_user):
        raise NotAllowed("Only security admins may help someone back in.")
    reason = reason.strip() if isinstance(reason, str) else ""
    if not reason:
        raise InvalidInput("reason", "Say why; the reason goes into the audit trail.")
    problem = storable_text_problem(reason) or (
        f"At most {MAX_REASON_CHARS} characters." if len(reason) > MAX_REASON_CHARS else None
    )
    if problem:
        raise InvalidInput("reason", problem)
    name = username.strip() if isinstance(username, str) else ""
    user = get_user_model().objects.filter(username=name).first() if name and not storable_text_problem(name) else None
    if user is None:
        raise InvalidInput("username", "No account has that user name.")
    return user, reason


def signin_unlock(*, username: Any, acting_user: Any, reason: Any) -> int:
    """Lift every lockout of ``username`` (from any address); returns the lockout records cleared."""
    user, reason = _checked(acting_user, username, reason)
    with transaction.atomic():
        cleared, _ = AccessAttempt.objects.filter(username=user.get_username()).delete()
        audit_record(
            "auth.unlocked",
            actor=acting_user,
            target_type="user",
            target_id=user.get_username()[:64],
            data={"reason": reason, "records_cleared": cleared},
        )
    return cleared


def second_factor_reset(*, username: Any, acting_user: Any, reason: Any) -> int:
    """Remove every authenticator app of ``username`` (a lost or replaced phone).

    They sign in with the password alone next time and, where their group requires an app, are
    sent straight to set a new one up. Sessions verified with the old app lose that verification at
    once (django-otp checks the device on every request). Nobody resets their own: a stolen session
    of a security admin must not be able to strip that admin's second factor.
    """
    user, reason = _checked(acting_user, username, reason)
    if user.pk == acting_user.pk:
        raise NotAllowed("Another security admin must reset your own authenticator app.")
    with transaction.atomic():
        devices = TOTPDevice.objects.select_for_update().filter(user=user)
        removed = len(devices)
        if not removed:
            raise InvalidInput("username", f"{user.get_username()} has no authenticator app to reset.")
        devices.delete()
        audit_record(
            "auth.second_factor_reset",
            actor=acting_user,
            target_type="user",
            target_id=user.get_username()[:64],
            data={"reason": reason, "devices_removed": removed},
        )
    return removed
