"""Writes for single sign-on: who a provider identity signs in as, and the mapped groups.

The provider decides membership of the groups named in ``JIT_OIDC_GROUP_MAP`` and of no other.
It never decides membership of a security group (only grants add people there, DESIGN.md §2),
never makes anyone staff or superuser, and never signs in as a service account.
"""

from __future__ import annotations

import logging
from typing import Any

from auditlog.context import disable_auditlog
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.db import transaction

from jitaccess import clock
from jitaccess.accounts.models import OIDCIdentity
from jitaccess.accounts.oidc_backend import OIDCRefused
from jitaccess.accounts.selectors import group_map_targets, protected_group_targets
from jitaccess.audit.models import Outcome
from jitaccess.audit.services import audit_record

logger = logging.getLogger(__name__)


def provider_groups_of(claims: dict[str, Any]) -> list[str]:
    """The provider's group names in the claims, sorted; none when the claim is missing."""
    value = claims.get(settings.JIT_OIDC_GROUPS_CLAIM)
    if value is None:
        return []  # no claim, no mapped group: the sync removes rather than keeps
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise OIDCRefused("groups_claim", f"{settings.JIT_OIDC_GROUPS_CLAIM} is not a list of names")
    return sorted(set(value))


def _refuse_protected_map() -> None:
    protected = protected_group_targets()
    if protected:
        logger.error("JIT_OIDC_GROUP_MAP names security groups %s; single sign-on is refused", protected)
        raise OIDCRefused("group_map_protected", f"JIT_OIDC_GROUP_MAP names security groups {protected}")


def oidc_groups_sync(user: Any, *, provider_groups: set[str]) -> tuple[list[str], list[str]]:
    """Make the user's membership of the mapped groups what the provider says; audit a change.

    Runs inside the sign-in's transaction; returns the groups added and removed.
    """
    targets = group_map_targets()
    wanted = {target for source, target in settings.JIT_OIDC_GROUP_MAP if source in provider_groups}
    current = set(user.groups.filter(name__in=targets).values_list("name", flat=True))
    added, removed = sorted(wanted - current), sorted(current - wanted)
    if added:
        user.groups.add(*(Group.objects.get_or_create(name=name)[0] for name in added))
    if removed:
        user.groups.remove(*Group.objects.filter(name__in=removed))
    if added or removed:
        audit_record(
            "auth.groups_synced",
            actor=user,
            target_type="user",
            target_id=user.get_username()[:64],
            data={"method": "oidc", "added": added, "removed": removed},
        )
    return added, removed


def _username(claims: dict[str, Any]) -> str:
    claim = settings.JIT_OIDC_USERNAME_CLAIM
    username = claims.get(claim)
    if not isinstance(username, str) or not username or len(username) > 150:
        raise OIDCRefused("username_claim", f"no usable {claim} claim")
    try:
        UnicodeUsernameValidator()(username)
    except ValidationError:
        raise OIDCRefused("username_claim", f"{claim} is not a valid user name") from None
    return username


def _identity_for(subject: str, claims: dict[str, Any]) -> OIDCIdentity:
    """The identity of ``subject``: linked before, linked now to the account of the same name
    (``JIT_OIDC_LINK_EXISTING``), or made with a new account (``JIT_OIDC_CREATE_USERS``)."""
    issuer = settings.JIT_OIDC_ISSUER
    identity = (
        OIDCIdentity.objects.select_for_update().select_related("user").filter(issuer=issuer, subject=subject).first()
    )
    if identity is not None:
        return identity
    username = _username(claims)
    user_model = get_user_model()
    user = user_model.objects.select_for_update().filter(username=username).first()
    if user is not None:
        if not settings.JIT_OIDC_LINK_EXISTING:
            raise OIDCRefused("not_linked", f"{username} exists and is not linked to this identity")
        if OIDCIdentity.objects.filter(issuer=issuer, user=user).exists():
            raise OIDCRefused("linked_elsewhere", f"{username} is linked to another identity")
        if user.is_service_account:
            raise OIDCRefused("service_account", f"{username} is a service account")
        if user.is_staff or user.is_superuser:
            # The admin's accounts are linked by a superuser, by hand, or not at all.
            raise OIDCRefused("privileged_account", f"{username} is staff; link it in the admin")
        action = "auth.identity_linked"
    else:
        if not settings.JIT_OIDC_CREATE_USERS:
            raise OIDCRefused("unknown_user", f"no account for {username}")
        # Notifications go to this address: not one the provider says is unverified.
        email = claims.get("email") if isinstance(claims.get("email"), str) else ""
        if claims.get("email_verified") is False:
            email = ""
        # No password: the provider is this account's way in (docs/SSO.md); never staff.
        user = user_model.objects.create_user(username, email=email[:254], password=None)
        action = "auth.user_created"
    identity = OIDCIdentity.objects.create(user=user, issuer=issuer, subject=subject)
    audit_record(
        action,
        actor=user,
        target_type="user",
        target_id=username[:64],
        data={"method": "oidc", "issuer": issuer, "subject": subject},
    )
    return identity


def oidc_account_for(*, claims: dict[str, Any]) -> Any:
    """The account the provider's verified ``claims`` sign in as: found by its ``sub``, or linked
    or created now. One transaction: a refusal (``OIDCRefused``) leaves no account or link behind.

    Groups do not change yet: only a complete sign-in (after the authenticator code, when one is
    asked) syncs them, in ``oidc_sign_in_complete``.
    """
    # The sign-in writes its own events; django-auditlog's rows would say it twice.
    with transaction.atomic(), disable_auditlog():
        _refuse_protected_map()
        user = _identity_for(claims["sub"], claims).user
        if user.is_service_account:
            raise OIDCRefused("service_account", f"{user.get_username()} is a service account")
        if not user.is_active:
            raise OIDCRefused("inactive", f"{user.get_username()} is deactivated")
    return user


def oidc_sign_in_complete(user: Any, *, provider_groups: list[str]) -> None:
    """What a complete sign-in through the provider changes: the mapped groups, made what the
    provider said (``provider_groups``), and the identity's last sign-in. Before the session opens,
    so the session's first request already sees the new groups."""
    with transaction.atomic(), disable_auditlog():
        _refuse_protected_map()  # a security group of that name may have been made since the answer
        oidc_groups_sync(user, provider_groups=set(provider_groups))
        identity = OIDCIdentity.objects.select_for_update().get(issuer=settings.JIT_OIDC_ISSUER, user=user)
        identity.last_login_at = clock.now()
        identity.save(update_fields=["last_login_at"])


def oidc_failed_record(*, action: str, reason: str, claims: dict[str, Any] | None = None, user: Any = None) -> None:
    """Audit a refused sign-in (``auth.login_failed``) or re-authentication (``auth.reauth_failed``)
    through the provider, in its own transaction."""
    subject = (claims or {}).get("sub")
    if user is None and isinstance(subject, str):
        user = OIDCIdentity.objects.filter(issuer=settings.JIT_OIDC_ISSUER, subject=subject).values("user").first()
        user = get_user_model().objects.filter(pk=user["user"]).first() if user else None
    data: dict[str, Any] = {"method": "oidc", "reason": reason}
    if isinstance(subject, str):
        data["subject"] = subject[:255]
    with transaction.atomic():
        audit_record(
            action,
            actor=user,
            outcome=Outcome.DENIED,
            target_type="user",
            target_id=user.get_username()[:64] if user is not None else "",
            data=data,
        )
