"""Reads for accounts: who must use a second factor, and which authenticator a person has."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import QuerySet
from django_otp.plugins.otp_totp.models import TOTPDevice

from jitaccess.accounts.models import GroupSecondFactorPolicy, OIDCIdentity, ServiceToken
from jitaccess.roles import is_security_admin


def groups_requiring_totp(user: Any) -> list[str]:
    """Names of the user's groups whose policy requires an authenticator app, sorted."""
    if not getattr(user, "is_authenticated", False):
        return []
    return sorted(
        GroupSecondFactorPolicy.objects.filter(require_totp=True, group__user=user).values_list(
            "group__name", flat=True
        )
    )


# Plain SQL: asked on every API call and every page a signed-in person opens, where building it
# through the ORM took several times the CPU of the whole round trip.
_TOTP_REQUIRED_SQL = (
    "SELECT 1 FROM accounts_groupsecondfactorpolicy policy"
    " JOIN accounts_user_groups membership ON membership.group_id = policy.group_id"
    " WHERE policy.require_totp AND membership.user_id = %s LIMIT 1"
)


def second_factor_required(user: Any) -> bool:
    """Does one of the user's groups require an authenticator app (TOTP)?"""
    if not getattr(user, "is_authenticated", False):
        return False
    with connection.cursor() as cursor:
        cursor.execute(_TOTP_REQUIRED_SQL, [user.pk])
        return cursor.fetchone() is not None


def confirmed_totp_device(user: Any) -> TOTPDevice | None:
    """The user's set-up authenticator (the newest, should there be several)."""
    return TOTPDevice.objects.filter(user=user, confirmed=True).order_by("-pk").first()


def second_factor_missing(user: Any) -> bool:
    """Required by a group but not set up: such a person may do nothing but set it up.

    A session whose provider sign-in showed several factors, with ``JIT_OIDC_TRUST_IDP_MFA`` on,
    has its second factor already (jitaccess/accounts/middleware.py marks its user).
    """
    if getattr(user, "verified_by_provider", False):
        return False
    return second_factor_required(user) and not TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def service_tokens_visible_to(user: Any) -> QuerySet[ServiceToken]:
    """Every service-account token for security admins, newest first; none for anyone else."""
    tokens = ServiceToken.objects.select_related("account", "created_by", "revoked_by").order_by("-pk")
    return tokens if is_security_admin(user) else tokens.none()


def service_accounts() -> QuerySet[Any]:
    """Active service accounts: the identities a token may be created for."""
    return get_user_model().objects.filter(is_service_account=True, is_active=True).order_by("username")


def service_token_state(token: ServiceToken, *, at: datetime) -> str:
    """``revoked``, ``expired`` or ``active``, from the clock at read time."""
    if token.revoked_at is not None:
        return "revoked"
    return "expired" if token.expires_at <= at else "active"


def oidc_identity_of(user: Any) -> OIDCIdentity | None:
    """The user's identity at the configured OpenID Connect provider, when single sign-on is on."""
    if not settings.JIT_OIDC_ENABLED or not getattr(user, "is_authenticated", False):
        return None
    return OIDCIdentity.objects.filter(issuer=settings.JIT_OIDC_ISSUER, user=user).first()


def group_map_targets() -> list[str]:
    """The Django groups a sign-in may change, sorted."""
    return sorted({target for _, target in settings.JIT_OIDC_GROUP_MAP})


def protected_group_targets() -> list[str]:
    """Map targets that name a security group: a map that reaches one is refused as a whole."""
    security_group = apps.get_model("approvals", "SecurityGroup")
    return sorted(security_group.objects.filter(name__in=group_map_targets()).values_list("name", flat=True))
