"""Helpers for the sign-in security tests: sessions verified by a device, codes, and the trail."""

from __future__ import annotations

import time
from typing import Any

from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from jitaccess.accounts.reauth import REAUTH_SESSION_KEY
from jitaccess.audit.models import AuditEvent


def code_for(device: TOTPDevice, *, steps_ahead: int = 0) -> str:
    """The device's code now (or ``steps_ahead`` time steps on, which it also accepts: tolerance 1)."""
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time += steps_ahead * device.step
    return f"{totp.token():0{device.digits}d}"


def wrong_code(device: TOTPDevice) -> str:
    """A code no step within the device's tolerance yields."""
    taken = {code_for(device, steps_ahead=step) for step in (-1, 0, 1)}
    return next(f"{n:06d}" for n in range(1_000_000) if f"{n:06d}" not in taken)


def signed_in(user: Any, device: TOTPDevice | None = None, *, reauthenticated: bool = True) -> Client:
    """A browser signed in as ``user``; with ``device``, a session verified by its code, as the
    sign-in form leaves it (force_login alone leaves a device owner's session unverified).
    ``reauthenticated``: the person also confirmed their password just now, as a first set-up
    of an authenticator app asks."""
    client = Client()
    client.force_login(user)
    session = client.session
    if device is not None:
        session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    if reauthenticated:
        session[REAUTH_SESSION_KEY] = {"user": user.pk, "at": time.time()}
    session.save()
    return client


def events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("seq"))
