"""Key rings, key versions and secrets (DESIGN.md §5, §9).

The keys app asks the approvals app one question, through
``approvals.selectors.has_access(user, security_group)``, and approvals never imports keys.
No model here holds a key or a value in clear: KEKs are stored wrapped by the root key, values
as envelopes (keys/crypto.py).
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q

from approvals.models import SecurityGroup

DAY = 24 * 3600


class Provider(models.TextChoices):
    LOCAL = "local", "Service root key (local)"
    PKCS11 = "pkcs11", "HSM key (PKCS#11)"


class KeyRing(models.Model):
    """A family of KEK versions gated by one security group, under one root-key provider."""

    name = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    security_group = models.ForeignKey(SecurityGroup, on_delete=models.PROTECT, related_name="keyrings")
    provider = models.CharField(max_length=20, choices=Provider.choices, default=Provider.LOCAL)
    provider_key = models.CharField(
        max_length=200, blank=True, help_text="The HSM key label for pkcs11 (a customer-held key); empty for local."
    )
    rotation_period_seconds = models.PositiveIntegerField(default=90 * DAY, validators=[MinValueValidator(3600)])
    rotated_at = models.DateTimeField()
    # rotated_at + rotation period, kept by the services so the beat job can find due rings by index.
    next_rotation_at = models.DateTimeField(db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class KeyState(models.TextChoices):
    PRIMARY = "primary"  # wraps new data keys; exactly one per key ring
    ACTIVE = "active"  # an earlier primary; still unwraps
    ARCHIVED = "archived"  # no data key refers to it any more; kept so restored backups stay readable
    DESTROYED = "destroyed"  # wrapped material wiped; only ever with zero references


class KeyVersion(models.Model):
    """One key-encryption key of a key ring, stored only wrapped by the ring's root key."""

    keyring = models.ForeignKey(KeyRing, on_delete=models.PROTECT, related_name="versions")
    version = models.PositiveIntegerField()
    state = models.CharField(max_length=20, choices=KeyState.choices)
    wrapped_key = models.BinaryField(null=True, editable=False)
    # Identifies the key without revealing it: a mismatch after unwrapping means "wrong key".
    check_value = models.BinaryField(max_length=8, editable=False)
    root_ref = models.CharField(max_length=200, help_text="The root key that wrapped this version.")
    created_at = models.DateTimeField()
    archived_at = models.DateTimeField(null=True, blank=True)
    destroyed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["keyring", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["keyring", "version"], name="keyversion_unique"),
            models.UniqueConstraint(
                fields=["keyring"], condition=Q(state="primary"), name="keyversion_one_primary_per_ring"
            ),
            models.CheckConstraint(
                condition=Q(state="destroyed", wrapped_key__isnull=True)
                | (~Q(state="destroyed") & Q(wrapped_key__isnull=False)),
                name="keyversion_material_iff_not_destroyed",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.keyring.name} v{self.version} ({self.state})"


class SecretKind(models.TextChoices):
    CONNECTED_ACCOUNT = "connected_account", "Connected mail account"
    GENERIC = "generic", "Generic secret"


class Secret(models.Model):
    """A secret value, sealed in an envelope; only ``secret_reveal`` ever opens it.

    ``uuid`` is the immutable identity bound into the envelope's associated data together with the
    key ring and ``value_version``: an envelope copied to another row, or an older value put back,
    fails to open. ``key_version`` mirrors the KEK version in the envelope header so the rewrap job
    can find stale rows by index; both change in the same UPDATE.
    """

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=200)
    keyring = models.ForeignKey(KeyRing, on_delete=models.PROTECT, related_name="secrets")
    kind = models.CharField(max_length=30, choices=SecretKind.choices)
    metadata = models.JSONField(default=dict, blank=True)
    envelope = models.BinaryField(editable=False)
    key_version = models.PositiveIntegerField(editable=False)
    value_version = models.PositiveIntegerField(default=1, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["keyring", "name"], name="secret_name_unique_per_ring"),
        ]
        indexes = [models.Index(fields=["keyring", "key_version"], name="secret_ring_key_version")]

    def __str__(self) -> str:
        return f"{self.keyring.name}/{self.name}"
