"""Writes of the keys app: key rings, rotation, rewrap, archiving, secrets.

Each write is one transaction that also appends its audit event (fail closed). Reveal, the one
read that returns plaintext, lives in keys/reveal.py.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction

from approvals.models import SecurityGroup
from jitaccess import clock
from jitaccess.audit.services import audit_record
from jitaccess.errors import Conflict, InvalidInput, NotAllowed, Unavailable
from keys import crypto, secret_rules
from keys.errors import KeyFailure, ProviderUnavailable
from keys.kek import kek_lookup, kek_new, kek_open
from keys.models import KeyRing, KeyState, KeyVersion, Provider, Secret
from keys.permissions import can_create_keyrings, can_manage_keyring, can_write_secrets
from keys.selectors import key_version_references, keyrings_due_for_rotation

MIN_ROTATION_SECONDS = 3600
logger = logging.getLogger(__name__)


def secret_context(keyring_id: int, secret_uuid: Any, value_version: int) -> bytes:
    """What an envelope is bound to: this key ring, this secret, this value (invariant 9)."""
    return crypto.aad("secret", keyring_id, str(secret_uuid), value_version)


def _provider_failure(exc: ProviderUnavailable) -> Unavailable:
    return Unavailable(f"The key ring's root-key provider is unavailable: {exc}", code="key_provider_unavailable")


def _primary(keyring: KeyRing) -> KeyVersion:
    return KeyVersion.objects.get(keyring=keyring, state=KeyState.PRIMARY)


# --- key rings ----------------------------------------------------------------------------------


def keyring_create(
    *,
    name: str,
    security_group: SecurityGroup,
    provider: str = Provider.LOCAL,
    provider_key: str = "",
    rotation_period_seconds: int = 90 * 24 * 3600,
    description: str = "",
    acting_user: Any | None,
) -> KeyRing:
    """A key ring with its first KEK version as primary; the provider must be able to wrap it.

    ``acting_user`` None is the system (seed data, an operator's shell).
    """
    if acting_user is not None and not can_create_keyrings(acting_user):
        raise NotAllowed("Only security admins create key rings.")
    if provider not in Provider.values:
        raise InvalidInput("provider", f"Unknown provider {provider!r}; one of: {', '.join(Provider.values)}.")
    if provider == Provider.PKCS11 and not provider_key:
        raise InvalidInput("provider_key", "An HSM key ring needs the label of its key in the HSM.")
    if rotation_period_seconds < MIN_ROTATION_SECONDS:
        raise InvalidInput("rotation_period_seconds", f"At least {MIN_ROTATION_SECONDS} seconds.")
    try:
        with transaction.atomic():
            now = clock.now()
            keyring = KeyRing.objects.create(
                name=name,
                description=description,
                security_group=security_group,
                provider=provider,
                provider_key=provider_key,
                rotation_period_seconds=rotation_period_seconds,
                rotated_at=now,
                next_rotation_at=now + timedelta(seconds=rotation_period_seconds),
            )
            first = kek_new(keyring, version=1, state=KeyState.PRIMARY, now=now)
            audit_record(
                "keyring.created",
                actor=acting_user,
                target_type="keyring",
                target_id=keyring.name,
                data={"provider": provider, "security_group": security_group.name, "root_ref": first.root_ref},
            )
    except IntegrityError:
        raise InvalidInput("name", f"A key ring named {name!r} already exists.") from None
    except ProviderUnavailable as exc:
        raise _provider_failure(exc) from None
    return keyring


def keyring_policy_update(
    keyring: KeyRing, *, rotation_period_seconds: int, description: str, acting_user: Any
) -> KeyRing:
    """The editable part of a ring: its rotation period (which moves the next rotation) and description."""
    if rotation_period_seconds < MIN_ROTATION_SECONDS:
        raise InvalidInput("rotation_period_seconds", f"At least {MIN_ROTATION_SECONDS} seconds.")
    if acting_user is not None and not can_manage_keyring(acting_user, keyring):
        raise NotAllowed("Only security admins and the key ring's service accounts may change it.")
    with transaction.atomic():
        keyring = KeyRing.objects.select_for_update().get(pk=keyring.pk)
        before = keyring.rotation_period_seconds
        keyring.rotation_period_seconds = rotation_period_seconds
        keyring.next_rotation_at = keyring.rotated_at + timedelta(seconds=rotation_period_seconds)
        keyring.description = description
        keyring.save(update_fields=["rotation_period_seconds", "next_rotation_at", "description"])
        audit_record(
            "keyring.policy_changed",
            actor=acting_user,
            target_type="keyring",
            target_id=keyring.name,
            data={"rotation_period_seconds": [before, rotation_period_seconds]},
        )
    return keyring


def keyring_rotate(keyring: KeyRing, *, acting_user: Any | None, scheduled: bool = False) -> KeyVersion:
    """A new primary KEK version; the old primary stays and keeps decrypting (invariant 10).

    The new version is wrapped and saved in the same transaction that promotes it, so a crash can
    never leave data under a key that exists only in memory. Every process reads version rows from
    the database when it meets a version it has not opened, so no propagation step is needed.
    """
    if acting_user is not None and not can_manage_keyring(acting_user, keyring):
        raise NotAllowed("Only security admins and the key ring's service accounts may rotate it.")
    try:
        with transaction.atomic():
            keyring = KeyRing.objects.select_for_update().get(pk=keyring.pk)
            now = clock.now()
            old = _primary(keyring)
            KeyVersion.objects.filter(pk=old.pk).update(state=KeyState.ACTIVE)
            new = kek_new(keyring, version=old.version + 1, state=KeyState.PRIMARY, now=now)
            keyring.rotated_at = now
            keyring.next_rotation_at = now + timedelta(seconds=keyring.rotation_period_seconds)
            keyring.save(update_fields=["rotated_at", "next_rotation_at"])
            transaction.on_commit(lambda: _rewrap_later(keyring.pk))
            audit_record(
                "key.rotated",
                actor=acting_user,
                target_type="keyring",
                target_id=keyring.name,
                data={"from_version": old.version, "to_version": new.version, "scheduled": scheduled},
            )
    except ProviderUnavailable as exc:
        raise _provider_failure(exc) from None
    return new


def _rewrap_later(keyring_id: int) -> None:
    from keys.tasks import rewrap_keyring  # tasks import this module

    try:
        rewrap_keyring.delay(keyring_id)
    except Exception:  # noqa: BLE001 - broker down: the maintenance beat job resumes the rewrap
        logger.warning("could not enqueue the rewrap of key ring %s; key maintenance will pick it up", keyring_id)


def keyrings_rotate_due() -> list[str]:
    """Rotate every ring whose period has passed; safe to run on several hosts at once."""
    rotated = []
    for ring_id in keyrings_due_for_rotation(now=clock.now()).values_list("pk", flat=True):
        with transaction.atomic():
            # skip_locked: a ring another beat host is rotating right now is left to it, and the
            # re-check under the lock stops a second rotation of a ring that was just done.
            ring = KeyRing.objects.select_for_update(skip_locked=True).filter(pk=ring_id).first()
            if ring is None or ring.next_rotation_at > clock.now():
                continue
            try:
                keyring_rotate(ring, acting_user=None, scheduled=True)
            except Unavailable:
                continue  # this ring's HSM is away; the others still rotate, and it is retried next run
            rotated.append(ring.name)
    return rotated


# --- rewrap and archiving -----------------------------------------------------------------------


@dataclass
class RewrapResult:
    rewrapped: int = 0
    skipped: int = 0  # changed under us (new value, or another rewrap): left as the other writer left it
    failed: int = 0  # could not be opened; left untouched and reported
    superseded: bool = False  # stopped because a newer rotation made another version primary
    to_version: int = 0


def keyring_rewrap(keyring: KeyRing, *, batch_size: int = 1000, acting_user: Any | None = None) -> RewrapResult:
    """Move every data key of the ring to the primary KEK version, batch by batch.

    Resumable and idempotent: it only ever selects rows not yet under the primary, and each batch
    commits on its own. Compare-and-swap: a row is written only if its value and key version are
    still those that were read, so a concurrent update of the secret is never overwritten.
    Only the wrapped data key changes; the sealed value is never decrypted here.
    """
    if acting_user is not None and not can_manage_keyring(acting_user, keyring):
        raise NotAllowed("Only security admins and the key ring's service accounts may rewrap it.")
    try:
        primary = kek_open(_primary(keyring), keyring)
    except ProviderUnavailable as exc:
        raise _provider_failure(exc) from None
    lookup = kek_lookup(keyring)
    result = RewrapResult(to_version=primary.version)
    after_id = 0
    while True:
        batch = list(
            # Only older versions: a rewrap overtaken by a newer rotation must never move rows back.
            Secret.objects.filter(keyring=keyring, id__gt=after_id, key_version__lt=primary.version)
            .order_by("id")
            .values_list("id", "uuid", "envelope", "key_version", "value_version")[:batch_size]
        )
        if not batch:
            break
        after_id = batch[-1][0]
        updates, failures = [], []
        for secret_id, secret_uuid, envelope, key_version, value_version in batch:
            context = secret_context(keyring.pk, secret_uuid, value_version)
            try:
                new_envelope = crypto.rewrap(envelope, lookup(key_version), primary, context)
            except KeyFailure as exc:
                failures.append({"secret": secret_id, "error": exc.code})
                continue
            updates.append((secret_id, new_envelope, primary.version, key_version, value_version))
        with transaction.atomic():
            # Rotation takes the ring's row lock, so under this shared lock the primary cannot change
            # between the check and the writes; if it already has, a newer rewrap owns the ring.
            _ring_share_lock(keyring)
            if not KeyVersion.objects.filter(keyring=keyring, version=primary.version, state=KeyState.PRIMARY).exists():
                result.superseded = True
                break
            written = _compare_and_swap(updates)
            audit_record(
                "key.rewrapped",
                actor=acting_user,
                target_type="keyring",
                target_id=keyring.name,
                data={
                    "to_version": primary.version,
                    "rewrapped": written,
                    "skipped": len(updates) - written,
                    "failed": failures[:20],
                    "failed_count": len(failures),
                },
            )
        result.rewrapped += written
        result.skipped += len(updates) - written
        result.failed += len(failures)
    return result


_CAS_SQL = (
    "UPDATE keys_secret AS s SET envelope = v.envelope, key_version = v.new_kv "
    "FROM (VALUES {rows}) AS v(id, envelope, new_kv, old_kv, old_vv) "
    "WHERE s.id = v.id AND s.key_version = v.old_kv AND s.value_version = v.old_vv"
)


def _compare_and_swap(updates: list[tuple[int, bytes, int, int, int]]) -> int:
    """Write each (id, envelope, new key version) only where (key version, value version) are unchanged."""
    if not updates:
        return 0
    if connection.vendor == "postgresql":
        # One statement per batch; the WHERE clause is the compare-and-swap.
        rows = ", ".join(["(%s, %s::bytea, %s::integer, %s::integer, %s::integer)"] * len(updates))
        params = [item for update in updates for item in update]
        with connection.cursor() as cursor:
            # Only %s placeholders are interpolated into the text; every value is a parameter.
            sql = _CAS_SQL.format(rows=rows)
            cursor.execute(sql, params)
            return cursor.rowcount
    written = 0
    for secret_id, envelope, new_kv, old_kv, old_vv in updates:
        written += Secret.objects.filter(pk=secret_id, key_version=old_kv, value_version=old_vv).update(
            envelope=envelope, key_version=new_kv
        )
    return written


def keyversions_archive_unreferenced(keyring: KeyRing, *, acting_user: Any | None = None) -> list[int]:
    """Archive every former primary that no data key refers to any more (the rollover's last step)."""
    archived = []
    with transaction.atomic():
        KeyRing.objects.select_for_update().get(pk=keyring.pk)
        references = key_version_references(keyring)
        for version in KeyVersion.objects.filter(keyring=keyring, state=KeyState.ACTIVE):
            if references.get(version.version, 0) == 0:
                _archive(version, acting_user=acting_user)
                archived.append(version.version)
    return archived


def keyversion_archive(version: KeyVersion, *, acting_user: Any | None) -> KeyVersion:
    with transaction.atomic():
        KeyRing.objects.select_for_update().get(pk=version.keyring_id)
        version = KeyVersion.objects.select_related("keyring").get(pk=version.pk)
        if acting_user is not None and not can_manage_keyring(acting_user, version.keyring):
            raise NotAllowed("Only security admins and the key ring's service accounts may archive versions.")
        if version.state != KeyState.ACTIVE:
            raise Conflict(f"Only an active (former primary) version can be archived; this one is {version.state}.")
        refs = key_version_references(version.keyring).get(version.version, 0)
        if refs:
            raise Conflict(f"{refs} secret(s) still use version {version.version}; rewrap the key ring first.")
        _archive(version, acting_user=acting_user)
    return version


def _archive(version: KeyVersion, *, acting_user: Any | None) -> None:
    version.state = KeyState.ARCHIVED
    version.archived_at = clock.now()
    version.save(update_fields=["state", "archived_at"])
    audit_record(
        "key.archived",
        actor=acting_user,
        target_type="keyring",
        target_id=version.keyring.name,
        data={"version": version.version},
    )


def keyversion_destroy(version: KeyVersion, *, acting_user: Any | None, confirm_version: int) -> KeyVersion:
    """Wipe an archived version's wrapped material: deliberate, irreversible, never if referenced.

    ``acting_user`` None is an operator at the command line (``manage.py keys destroy``).

    The ring's row lock serialises this with rewrap and archive; on PostgreSQL a trigger refuses
    the same update if any secret still names the version (migration 0002), whatever the caller.
    """
    with transaction.atomic():
        KeyRing.objects.select_for_update().get(pk=version.keyring_id)
        version = KeyVersion.objects.select_related("keyring").get(pk=version.pk)
        if acting_user is not None and not can_manage_keyring(acting_user, version.keyring):
            raise NotAllowed("Only security admins and the key ring's service accounts may destroy versions.")
        if confirm_version != version.version:
            raise InvalidInput("confirm_version", "Type the version number to confirm its destruction.")
        if version.state != KeyState.ARCHIVED:
            raise Conflict(f"Only an archived version can be destroyed; this one is {version.state}.")
        refs = key_version_references(version.keyring).get(version.version, 0)
        if refs:
            raise Conflict(f"{refs} secret(s) still use version {version.version}; it cannot be destroyed.")
        version.state = KeyState.DESTROYED
        version.wrapped_key = None
        version.destroyed_at = clock.now()
        version.save(update_fields=["state", "wrapped_key", "destroyed_at"])
        audit_record(
            "key.destroyed",
            actor=acting_user,
            target_type="keyring",
            target_id=version.keyring.name,
            data={"version": version.version},
        )
    return version


# --- secrets ------------------------------------------------------------------------------------


def _seal(keyring: KeyRing, secret: Secret, plaintext: bytes) -> None:
    """Seal under the ring's primary KEK; the caller holds the ring's row lock."""
    primary = kek_open(_primary(keyring), keyring)
    secret.envelope = crypto.seal(primary, plaintext, secret_context(keyring.pk, secret.uuid, secret.value_version))
    secret.key_version = primary.version


def _webhook_ring_guard(keyring: KeyRing, *, for_webhook: bool) -> None:
    """The webhook key ring holds only signing secrets, made and rotated by jitaccess.webhooks, so
    each change of one is also a webhook.* event and no one ever chooses a signing value."""
    if keyring.name == settings.JIT_WEBHOOK_KEYRING and not for_webhook:
        raise NotAllowed(
            "This key ring holds webhook signing secrets; they are made and rotated on the webhooks' pages only.",
            code="server_only",
        )


def secret_create(
    *,
    keyring: KeyRing,
    name: str,
    kind: str,
    metadata: Any,
    value: Any,
    acting_user: Any,
    for_webhook: bool = False,
) -> Secret:
    _webhook_ring_guard(keyring, for_webhook=for_webhook)
    kind = secret_rules.kind_checked(kind)
    metadata = secret_rules.metadata_checked(kind, metadata)
    plaintext = secret_rules.value_checked(value)
    name = (name or "").strip()
    if not name:
        raise InvalidInput("name", "A name is required.")
    if not can_write_secrets(acting_user, keyring):
        raise NotAllowed("Only security admins and the key ring's service accounts may add secrets to it.")
    try:
        with transaction.atomic():
            _ring_share_lock(keyring)
            now = clock.now()
            secret = Secret(
                name=name,
                keyring=keyring,
                kind=kind,
                metadata=metadata,
                created_by=acting_user,
                created_at=now,
                updated_at=now,
            )
            _seal(keyring, secret, plaintext)
            secret.save()
            audit_record(
                "secret.created",
                actor=acting_user,
                target_type="secret",
                target_id=secret.pk,
                data={"name": name, "keyring": keyring.name, "kind": kind, "key_version": secret.key_version},
            )
    except IntegrityError:
        raise InvalidInput("name", f"The key ring already holds a secret named {name!r}.") from None
    except ProviderUnavailable as exc:
        raise _provider_failure(exc) from None
    return secret


def secret_update(
    secret: Secret, *, acting_user: Any, value: Any = None, metadata: Any = None, for_webhook: bool = False
) -> Secret:
    """A new value (a fresh data key, ``value_version`` + 1) and / or new metadata."""
    _webhook_ring_guard(secret.keyring, for_webhook=for_webhook)
    if value is None and metadata is None:
        raise InvalidInput("value", "Give a new value, new metadata, or both.")
    plaintext = secret_rules.value_checked(value) if value is not None else None
    metadata = secret_rules.metadata_checked(secret.kind, metadata) if metadata is not None else None
    if not can_write_secrets(acting_user, secret.keyring):
        raise NotAllowed("Only security admins and the key ring's service accounts may change its secrets.")
    try:
        with transaction.atomic():
            keyring = secret.keyring
            _ring_share_lock(keyring)
            secret = Secret.objects.select_for_update().get(pk=secret.pk)
            changed = []
            if metadata is not None:
                secret.metadata = metadata
                changed.append("metadata")
            if plaintext is not None:
                secret.value_version += 1
                _seal(keyring, secret, plaintext)
                changed += ["envelope", "key_version", "value_version"]
            secret.updated_at = clock.now()
            secret.save(update_fields=[*changed, "updated_at"])
            audit_record(
                "secret.updated",
                actor=acting_user,
                target_type="secret",
                target_id=secret.pk,
                data={"changed": [c for c in changed if c != "envelope"], "value_version": secret.value_version},
            )
    except ProviderUnavailable as exc:
        raise _provider_failure(exc) from None
    return secret


def _ring_share_lock(keyring: KeyRing) -> None:
    """FOR SHARE on the ring: writers of secrets run side by side, while rotation and archiving
    (FOR UPDATE) wait, so the primary version read here stays primary until the secret is written."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM keys_keyring WHERE id = %s FOR SHARE", [keyring.pk])
