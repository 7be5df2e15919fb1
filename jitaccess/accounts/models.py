from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    """A person, or (``is_service_account``) an automation identity.

    Only service accounts may be standing members of a protected security group.
    """

    is_service_account = models.BooleanField(
        default=False, help_text="Automation identity; the only kind allowed standing membership."
    )


class HashedBearerToken(models.Model):
    """A bearer secret stored only as its SHA-256, with its own end of life."""

    token_hash = models.CharField(max_length=64, unique=True)
    # The first characters, so people can tell tokens apart without the token being stored.
    prefix = models.CharField(max_length=16)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True


class ApiToken(HashedBearerToken):
    """A personal API token; shown once, then only its hash is kept."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")

    class Meta:
        indexes = [models.Index(fields=["user", "expires_at"])]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"


class ServiceTokenScope(models.TextChoices):
    """What a service-account token may do; each API view names the scope an action needs."""

    SECRETS_READ = "secrets:read", "secrets:read — list and read secrets' metadata"
    SECRETS_REVEAL = "secrets:reveal", "secrets:reveal — reveal secrets' values"
    SECRETS_WRITE = "secrets:write", "secrets:write — create secrets and change their values"
    REQUESTS_READ = "requests:read", "requests:read — read access requests and grants"


class ServiceToken(HashedBearerToken):
    """An API token of a service account, created by a security admin: scoped, always expiring,
    revocable, shown once and then kept only as its hash."""

    # The account it acts as; PROTECT keeps the token's history readable after the account goes.
    account = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="service_tokens")
    name = models.CharField(max_length=100, help_text="What the token is for, e.g. the job or host using it.")
    scopes = models.JSONField(default=list)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="service_tokens_created"
    )
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    is_service_token = True

    class Meta:
        indexes = [models.Index(fields=["account", "expires_at"])]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.account}: {self.name})"


class GroupSecondFactorPolicy(models.Model):
    """Whether members of a group must use an authenticator app (TOTP).

    A member without a confirmed device may do nothing but set one up: every browser page leads to
    the enrolment page, and the API refuses their session and their token requests.
    """

    group = models.OneToOneField(
        "auth.Group", on_delete=models.CASCADE, related_name="second_factor_policy", verbose_name="group"
    )
    require_totp = models.BooleanField(
        default=True, help_text="Members must set up an authenticator app before they can do anything else."
    )

    class Meta:
        verbose_name = "second-factor policy"
        verbose_name_plural = "second-factor policies"

    def __str__(self) -> str:
        return f"{self.group}: {'TOTP required' if self.require_totp else 'TOTP optional'}"


class OIDCIdentity(models.Model):
    """Who a person is at the OpenID Connect provider: its issuer and the ``sub`` claim it gives
    them. Sign-in finds the account by this pair, never by e-mail address or user name, which
    the provider may reassign."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="oidc_identities")
    issuer = models.CharField(max_length=255)
    subject = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)
    last_login_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "OpenID Connect identity"
        verbose_name_plural = "OpenID Connect identities"
        constraints = [
            models.UniqueConstraint(fields=["issuer", "subject"], name="oidc_identity_unique"),
            # One identity per account at a provider: a second would be a second way in.
            models.UniqueConstraint(fields=["issuer", "user"], name="oidc_identity_one_per_user"),
        ]

    def __str__(self) -> str:
        return f"{self.user} = {self.subject} at {self.issuer}"
