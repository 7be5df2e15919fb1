"""Reads of key rings and secrets, scoped to the caller before anything is fetched."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Count, Q, QuerySet

from approvals.models import GrantState, StandingMembership
from approvals.selectors import entitlements_visible_to
from jitaccess import clock
from jitaccess.roles import can_read_everything
from keys.models import KeyRing, Secret


def _visible_groups(user: Any) -> Q:
    """The security groups whose key rings the user may see (not open: that is reveal's question).

    Their own standing memberships and active grants, and the groups they could request.
    """
    now = clock.now()
    standing = StandingMembership.objects.filter(user=user).values("security_group_id")
    granted = user.grants.filter(state=GrantState.ACTIVE, expires_at__gt=now).values("security_group_id")
    requestable = entitlements_visible_to(user).values("security_group_id")
    return Q(security_group_id__in=standing) | Q(security_group_id__in=granted) | Q(security_group_id__in=requestable)


def keyrings_visible_to(user: Any) -> QuerySet[KeyRing]:
    qs = KeyRing.objects.select_related("security_group").prefetch_related("versions")
    if not getattr(user, "is_authenticated", False):
        return qs.none()
    if can_read_everything(user):
        return qs
    return qs.filter(_visible_groups(user))


def secrets_visible_to(user: Any) -> QuerySet[Secret]:
    qs = Secret.objects.select_related("keyring").defer("envelope")
    if not getattr(user, "is_authenticated", False):
        return qs.none()
    if can_read_everything(user):
        return qs
    ring_filter = _visible_groups(user)
    return qs.filter(keyring__in=KeyRing.objects.filter(ring_filter).values("pk"))


def key_version_references(keyring: KeyRing) -> dict[int, int]:
    """How many secrets' data keys each KEK version of the ring wraps right now."""
    rows = Secret.objects.filter(keyring=keyring).values("key_version").annotate(n=Count("pk"))
    return {row["key_version"]: row["n"] for row in rows}


def keyrings_due_for_rotation(*, now: datetime) -> QuerySet[KeyRing]:
    return KeyRing.objects.filter(next_rotation_at__lte=now).order_by("next_rotation_at")


def secrets_opened_by(security_group_id: int) -> QuerySet[Secret]:
    """The secrets a grant for this security group opens: every ring the group gates (metadata only)."""
    return (
        Secret.objects.filter(keyring__security_group_id=security_group_id)
        .select_related("keyring")
        .defer("envelope")
        .order_by("keyring__name", "name")
    )
