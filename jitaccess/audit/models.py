from __future__ import annotations

from django.conf import settings
from django.db import models


class Outcome(models.TextChoices):
    SUCCESS = "success"
    DENIED = "denied"
    FAILED = "failed"


class AppendOnlyQuerySet(models.QuerySet):
    """Audit rows are written once by ``audit_record`` and never changed through the ORM."""

    def update(self, **kwargs):  # type: ignore[no-untyped-def]
        raise PermissionError("audit rows are append-only")

    def delete(self):  # type: ignore[no-untyped-def]
        raise PermissionError("audit rows are append-only")

    def bulk_update(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise PermissionError("audit rows are append-only")

    def bulk_create(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise PermissionError("audit rows are written one at a time")


class AppendOnlyModel(models.Model):
    """A row that is written once and never changed or deleted through the ORM."""

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if not self._state.adding:
            raise PermissionError(f"{self._meta.verbose_name_plural} are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise PermissionError(f"{self._meta.verbose_name_plural} are append-only")


class AuditEvent(AppendOnlyModel):
    """One entry of the hash-chained audit trail.

    ``hash`` covers every other field and the previous event's hash, so editing, deleting,
    inserting or reordering rows breaks the chain (see ``jitaccess.audit.chain``).
    """

    seq = models.BigIntegerField(unique=True)
    at = models.DateTimeField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # The actor's username as it was, so renaming a user never changes what the trail says.
    actor_name = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=64)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    grant_id = models.BigIntegerField(null=True, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.SUCCESS)
    ip = models.GenericIPAddressField(null=True, blank=True)
    correlation_id = models.CharField(max_length=64, blank=True)
    data = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["seq"]
        indexes = [
            models.Index(fields=["action", "seq"]),
            models.Index(fields=["actor", "seq"]),
            models.Index(fields=["target_type", "target_id", "seq"]),
            models.Index(fields=["grant_id", "seq"]),
            models.Index(fields=["outcome", "seq"]),
            models.Index(fields=["actor_name", "seq"]),
            models.Index(fields=["at"]),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action} {self.outcome}"


class AuditCheckpoint(AppendOnlyModel):
    """A signed statement "the chain had ``seq`` events ending in ``head_hash``".

    Written by the checkpoint beat job here and to a sink outside the database; a copy in the
    sink lets verification notice rows trimmed from the tail, which the chain alone cannot.
    """

    seq = models.BigIntegerField(unique=True)
    head_hash = models.CharField(max_length=64)
    at = models.DateTimeField()
    # Hex of the raw Ed25519 public key that signed, so retired signing keys stay checkable.
    public_key = models.CharField(max_length=64)
    signature = models.CharField(max_length=128)

    class Meta:
        ordering = ["seq"]

    def __str__(self) -> str:
        return f"checkpoint at #{self.seq}"
