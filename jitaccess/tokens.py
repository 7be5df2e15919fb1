"""Random bearer secrets and the hash under which they are stored."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Q


def new_token(prefix: str) -> str:
    return f"{prefix}{secrets.token_urlsafe(32)}"


def token_digest(token: str) -> str:
    # The tokens carry 256 random bits, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(token.encode()).hexdigest()


# "Last used" is for people reading a token list; a minute's precision spares every request a
# write and a commit.
LAST_USED_PRECISION = timedelta(seconds=60)


def last_used_touch(record: Any, now: datetime) -> None:
    """Record a token's use, at most once a minute (a guarded UPDATE, so racing requests agree)."""
    if record.last_used_at is not None and now - record.last_used_at < LAST_USED_PRECISION:
        return
    type(record).objects.filter(pk=record.pk).filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_PRECISION)
    ).update(last_used_at=now)
