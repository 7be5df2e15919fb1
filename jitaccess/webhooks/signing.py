"""The signature a receiver checks: ``X-Jitaccess-Signature: t=<unix time>,v1=<hex>``.

v1 is HMAC-SHA256, keyed with the endpoint's signing secret (the whole ``whsec_…`` string as
shown, UTF-8), over ``"<t>." + body``. The time is inside the MAC, so a captured request replayed
later carries an old time that the receiver rejects (docs/WEBHOOKS.md has the receiver's side).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

SECRET_PREFIX = "whsec_"
SIGNATURE_HEADER = "X-Jitaccess-Signature"
EVENT_HEADER = "X-Jitaccess-Event"
DELIVERY_HEADER = "X-Jitaccess-Delivery"
DEFAULT_TOLERANCE_SECONDS = 300


def new_signing_secret() -> str:
    """32 random bytes, hex, with a prefix that makes a leaked one easy to recognise and search for."""
    return SECRET_PREFIX + secrets.token_hex(32)


def signature(secret: str, body: bytes, *, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def signature_valid(
    secret: str, body: bytes, header: str, *, now: float | None = None, tolerance: int = DEFAULT_TOLERANCE_SECONDS
) -> bool:
    """What a receiver does; the same code as the snippet in docs/WEBHOOKS.md, which a test runs."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts.get("v1", ""))
