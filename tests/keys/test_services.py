"""Key rings, rotation, rewrap, archiving and secrets, through keys.services (invariants 9–11)."""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest
from django.db import IntegrityError, connection, transaction

from jitaccess.audit.models import AuditEvent
from jitaccess.errors import Conflict, InvalidInput, NotAllowed
from keys import crypto, services
from keys.errors import WrongKey
from keys.kek import kek_cache_clear, kek_lookup, kek_open
from keys.models import KeyState, KeyVersion, Secret
from keys.providers import reset as providers_reset
from keys.reveal import secret_reveal
from tests.keys.conftest import make_secret
from tests.threads import run_concurrently


def reveal(secret: Secret, user: Any) -> str:
    return secret_reveal(secret.pk, acting_user=user, reason="test").value


def states(keyring: Any) -> dict[int, str]:
    return dict(KeyVersion.objects.filter(keyring=keyring).values_list("version", "state"))


def test_it_creates_a_key_ring_with_one_primary_version_stored_only_wrapped(keyring):
    version = KeyVersion.objects.get(keyring=keyring)

    assert (version.version, version.state) == (1, KeyState.PRIMARY)
    assert len(bytes(version.wrapped_key)) == 60 and len(bytes(version.check_value)) == 8
    assert version.root_ref.startswith("local:")
    assert AuditEvent.objects.filter(action="keyring.created", target_id=keyring.name).count() == 1


def test_it_refuses_an_unknown_provider_and_a_short_rotation_period(security_group):
    with pytest.raises(InvalidInput) as unknown:
        services.keyring_create(name="r", security_group=security_group, provider="vault", acting_user=None)
    with pytest.raises(InvalidInput) as short:
        services.keyring_create(name="r", security_group=security_group, rotation_period_seconds=5, acting_user=None)
    with pytest.raises(InvalidInput) as label:
        services.keyring_create(name="r", security_group=security_group, provider="pkcs11", acting_user=None)

    assert (unknown.value.field, short.value.field, label.value.field) == (
        "provider",
        "rotation_period_seconds",
        "provider_key",
    )


def test_it_refuses_a_second_key_ring_with_the_same_name(keyring, security_group):
    with pytest.raises(InvalidInput) as exc:
        services.keyring_create(name=keyring.name, security_group=security_group, acting_user=None)

    assert exc.value.field == "name"


def test_it_rotates_to_a_new_primary_and_keeps_old_values_readable(cast, keyring, secret):
    new = services.keyring_rotate(keyring, acting_user=cast["secadmin"])

    assert new.version == 2
    assert states(keyring) == {1: KeyState.ACTIVE, 2: KeyState.PRIMARY}
    assert reveal(secret, cast["svc"]) == "s3cret-value"
    later = make_secret(keyring, cast["secadmin"], name="mail-2", value="second")
    assert later.key_version == 2
    assert reveal(later, cast["svc"]) == "second"
    event = AuditEvent.objects.get(action="key.rotated")
    assert event.data == {"from_version": 1, "to_version": 2, "scheduled": False}


def test_it_lets_only_security_admins_and_the_rings_service_accounts_rotate(cast, keyring):
    for name in ["requester", "auditor", "legal1a", "outsider"]:
        with pytest.raises(NotAllowed):
            services.keyring_rotate(keyring, acting_user=cast[name])
    services.keyring_rotate(keyring, acting_user=cast["svc"])

    assert states(keyring) == {1: KeyState.ACTIVE, 2: KeyState.PRIMARY}


def test_it_rewraps_every_data_key_to_the_primary_and_archives_the_unused_version(cast, keyring):
    secrets = [make_secret(keyring, cast["secadmin"], name=f"s{i}", value=f"value-{i}") for i in range(7)]
    services.keyring_rotate(keyring, acting_user=None)
    before = {s.pk: bytes(Secret.objects.get(pk=s.pk).envelope) for s in secrets}

    result = services.keyring_rewrap(keyring, batch_size=3)
    archived = services.keyversions_archive_unreferenced(keyring)

    assert (result.rewrapped, result.skipped, result.failed, result.to_version) == (7, 0, 0, 2)
    assert archived == [1]
    assert states(keyring) == {1: KeyState.ARCHIVED, 2: KeyState.PRIMARY}
    for s in secrets:
        after = bytes(Secret.objects.get(pk=s.pk).envelope)
        payload = crypto.OVERHEAD_BYTES - crypto.TAG_BYTES - crypto.NONCE_BYTES  # where the payload nonce starts
        assert after[payload:] == before[s.pk][payload:]  # the sealed value itself was not re-encrypted
        assert reveal(s, cast["svc"]) == f"value-{s.name[1:]}"
    assert AuditEvent.objects.filter(action="key.rewrapped").count() == 3  # one per batch
    assert services.keyring_rewrap(keyring).rewrapped == 0  # idempotent: nothing left to do


def test_it_never_overwrites_a_value_changed_while_the_rewrap_ran(cast, keyring, secret):
    services.keyring_rotate(keyring, acting_user=None)
    stale = Secret.objects.get(pk=secret.pk)
    services.secret_update(secret, acting_user=cast["secadmin"], value="changed meanwhile")
    # The rewrap read the row before the update; its compare-and-swap must now miss.
    context = services.secret_context(keyring.pk, stale.uuid, stale.value_version)
    lookup = kek_lookup(keyring)
    rewrapped = crypto.rewrap(stale.envelope, lookup(1), lookup(2), context)
    written = services._compare_and_swap([(stale.pk, rewrapped, 2, stale.key_version, stale.value_version)])

    assert written == 0
    assert reveal(secret, cast["svc"]) == "changed meanwhile"


def test_it_reports_and_skips_a_corrupt_row_and_still_rewraps_the_rest(cast, keyring):
    good = make_secret(keyring, cast["secadmin"], name="good", value="fine")
    bad = make_secret(keyring, cast["secadmin"], name="bad", value="doomed")
    services.keyring_rotate(keyring, acting_user=None)
    envelope = bytearray(Secret.objects.get(pk=bad.pk).envelope)
    envelope[20] ^= 0xFF
    Secret.objects.filter(pk=bad.pk).update(envelope=bytes(envelope))

    result = services.keyring_rewrap(keyring)

    assert (result.rewrapped, result.failed) == (1, 1)
    assert Secret.objects.get(pk=bad.pk).envelope == bytes(envelope)  # left as it was, never "repaired"
    assert reveal(good, cast["svc"]) == "fine"
    event = AuditEvent.objects.get(action="key.rewrapped")
    assert event.data["failed"] == [{"secret": bad.pk, "error": "tampered"}]
    assert services.keyversions_archive_unreferenced(keyring) == []  # version 1 is still referenced


def test_it_archives_and_destroys_only_versions_no_secret_uses(cast, keyring, secret):
    services.keyring_rotate(keyring, acting_user=None)
    v1 = KeyVersion.objects.get(keyring=keyring, version=1)

    with pytest.raises(Conflict):
        services.keyversion_archive(v1, acting_user=cast["secadmin"])  # secret still under v1
    with pytest.raises(Conflict):
        services.keyversion_destroy(v1, acting_user=cast["secadmin"], confirm_version=1)
    services.keyring_rewrap(keyring)
    with pytest.raises(InvalidInput):
        services.keyversion_destroy(v1, acting_user=cast["secadmin"], confirm_version=2)
    services.keyversion_archive(v1, acting_user=cast["secadmin"])
    with pytest.raises(NotAllowed):
        services.keyversion_destroy(v1, acting_user=cast["auditor"], confirm_version=1)
    services.keyversion_destroy(v1, acting_user=cast["secadmin"], confirm_version=1)

    v1.refresh_from_db()
    assert (v1.state, v1.wrapped_key) == (KeyState.DESTROYED, None)
    assert reveal(secret, cast["svc"]) == "s3cret-value"
    with pytest.raises(Conflict):
        services.keyversion_archive(KeyVersion.objects.get(keyring=keyring, version=2), acting_user=cast["secadmin"])
    assert AuditEvent.objects.filter(action__in=["key.archived", "key.destroyed"]).count() == 2


@pytest.mark.postgres
def test_the_database_refuses_to_destroy_a_referenced_version_whatever_the_caller(keyring, secret):
    v1 = KeyVersion.objects.get(keyring=keyring, version=1)

    with pytest.raises(IntegrityError, match="still referenced"), transaction.atomic():
        KeyVersion.objects.filter(pk=v1.pk).update(state=KeyState.DESTROYED, wrapped_key=None)
    with pytest.raises(Exception, match="never deleted"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM keys_keyversion WHERE id = %s", [v1.pk])
    with pytest.raises(IntegrityError, match="missing or destroyed"), transaction.atomic():
        Secret.objects.filter(pk=secret.pk).update(key_version=99)

    assert KeyVersion.objects.get(pk=v1.pk).state == KeyState.PRIMARY


def test_it_tells_a_wrong_root_key_from_tampering(cast, keyring, secret, settings):
    settings.JIT_ROOT_KEY = b"\x42" * 32
    kek_cache_clear()
    providers_reset()

    with pytest.raises(Conflict) as exc:
        reveal(secret, cast["svc"])
    with pytest.raises(WrongKey, match="wrapped by root key local:"):
        kek_open(KeyVersion.objects.get(keyring=keyring, version=1), keyring)

    assert exc.value.code == "secret_unreadable"
    event = AuditEvent.objects.get(action="secret.reveal_failed")
    assert event.data["error"] == "wrong_key"


def test_it_updates_a_value_under_a_fresh_data_key_and_binds_it_to_the_new_version(cast, keyring, secret):
    old_envelope = bytes(secret.envelope)

    updated = services.secret_update(secret, acting_user=cast["svc"], value="rotated password")

    assert updated.value_version == 2
    assert reveal(secret, cast["svc"]) == "rotated password"
    # Putting the old envelope back (a rollback by someone with database access) does not work.
    Secret.objects.filter(pk=secret.pk).update(envelope=old_envelope)
    with pytest.raises(Conflict):
        reveal(secret, cast["svc"])


def test_it_updates_metadata_alone_without_touching_the_value(cast, secret):
    new_metadata = {"provider": "outlook", "account_address": "ops@example.test", "credential_type": "password"}

    services.secret_update(secret, acting_user=cast["secadmin"], metadata=new_metadata)

    secret.refresh_from_db()
    assert (secret.metadata["provider"], secret.value_version) == ("outlook", 1)
    assert reveal(secret, cast["svc"]) == "s3cret-value"


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"kind": "ssh_key"}, "kind"),
        ({"value": ""}, "value"),
        ({"value": "   "}, "value"),
        ({"value": None}, "value"),
        ({"value": "x" * (64 * 1024 + 1)}, "value"),
        ({"metadata": ["not", "an", "object"]}, "metadata"),
        ({"metadata": "string"}, "metadata"),
        ({"kind": "generic", "metadata": {"password": "oops"}}, "metadata"),
        ({"kind": "generic", "metadata": {"nested": {"a": 1}}}, "metadata"),
        (
            {"metadata": {"provider": "aol", "account_address": "a@example.test", "credential_type": "password"}},
            "metadata",
        ),
        ({"metadata": {"provider": "gmail", "account_address": "nope", "credential_type": "password"}}, "metadata"),
        ({"metadata": {"provider": "gmail", "account_address": "a@example.test"}}, "metadata"),
        ({"metadata": {"provider": "gmail", "account_address": 5, "credential_type": "password"}}, "metadata"),
        ({"name": "  "}, "name"),
    ],
)
def test_it_refuses_bad_secret_input_naming_the_field_and_stores_nothing(cast, keyring, changes, field):
    with pytest.raises(InvalidInput) as exc:
        make_secret(keyring, cast["secadmin"], **changes)

    assert exc.value.field == field
    assert not Secret.objects.exists()


def test_it_refuses_a_duplicate_name_in_the_same_ring(cast, keyring, secret):
    with pytest.raises(InvalidInput) as exc:
        make_secret(keyring, cast["secadmin"], name=secret.name)

    assert exc.value.field == "name"


@pytest.mark.parametrize("who", ["requester", "auditor", "legal1a", "outsider"])
def test_it_lets_only_security_admins_and_the_rings_service_accounts_write_secrets(cast, keyring, secret, who):
    with pytest.raises(NotAllowed):
        make_secret(keyring, cast[who], name="other")
    with pytest.raises(NotAllowed):
        services.secret_update(secret, acting_user=cast[who], value="x")

    assert Secret.objects.count() == 1


def test_it_rotates_only_the_rings_that_are_due(cast, keyring, security_group):
    other = services.keyring_create(name="ring-later", security_group=security_group, acting_user=None)
    type(keyring).objects.filter(pk=keyring.pk).update(next_rotation_at=keyring.rotated_at)

    assert services.keyrings_rotate_due() == [keyring.name]
    assert services.keyrings_rotate_due() == []  # the next period starts now
    assert states(keyring) == {1: KeyState.ACTIVE, 2: KeyState.PRIMARY}
    assert states(other) == {1: KeyState.PRIMARY}
    assert AuditEvent.objects.get(action="key.rotated").data["scheduled"] is True


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_rotations_leave_exactly_one_primary(cast, entitlement, security_group):
    keyring = services.keyring_create(name="ring-race", security_group=security_group, acting_user=None)
    secret = make_secret(keyring, cast["secadmin"])

    results = run_concurrently([lambda: services.keyring_rotate(keyring, acting_user=None) for _ in range(6)])

    assert not [r for r in results if isinstance(r, Exception)]
    assert sorted(states(keyring)) == list(range(1, 8))
    assert list(states(keyring).values()).count(KeyState.PRIMARY) == 1
    assert reveal(secret, cast["svc"]) == "s3cret-value"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_rewraps_and_updates_lose_nothing(cast, entitlement, security_group):
    keyring = services.keyring_create(name="ring-cas", security_group=security_group, acting_user=None)
    secrets = [make_secret(keyring, cast["secadmin"], name=f"s{i}", value=f"v{i}") for i in range(30)]
    services.keyring_rotate(keyring, acting_user=None)

    def update(index: int) -> Any:
        return lambda: services.secret_update(secrets[index], acting_user=cast["svc"], value=f"new{index}")

    calls = [lambda: services.keyring_rewrap(keyring, batch_size=4) for _ in range(2)]
    calls += [update(i) for i in range(0, 30, 3)]
    results = run_concurrently(calls)

    assert not [r for r in results if isinstance(r, Exception)]
    for index, s in enumerate(secrets):
        assert reveal(s, cast["svc"]) == (f"new{index}" if index % 3 == 0 else f"v{index}")
    assert Secret.objects.filter(keyring=keyring).exclude(key_version=2).count() == 0


def test_a_rewrap_overtaken_by_a_newer_rotation_moves_nothing_back(cast, keyring):
    secrets = [make_secret(keyring, cast["secadmin"], name=f"s{i}", value=f"v{i}") for i in range(3)]
    v2 = services.keyring_rotate(keyring, acting_user=None)
    services.keyring_rotate(keyring, acting_user=None)  # v3 is primary before the old rewrap writes

    with mock.patch("keys.services._primary", return_value=v2):  # a rewrap that started under v2
        stale = services.keyring_rewrap(keyring)
    fresh = services.keyring_rewrap(keyring)

    assert (stale.superseded, stale.rewrapped) == (True, 0)
    assert (fresh.superseded, fresh.rewrapped, fresh.to_version) == (False, 3, 3)
    assert set(Secret.objects.filter(keyring=keyring).values_list("key_version", flat=True)) == {3}
    for index, s in enumerate(secrets):
        assert reveal(s, cast["svc"]) == f"v{index}"


@pytest.mark.parametrize("metadata", [{"host": "a\x00b"}, {"ho\x00st": "a"}, {"host": "\ud800"}, {"\udfff": "x"}])
def test_it_refuses_metadata_that_the_database_could_not_store(cast, keyring, metadata):
    with pytest.raises(InvalidInput) as exc:
        make_secret(keyring, cast["secadmin"], kind="generic", metadata=metadata)

    assert exc.value.field == "metadata"
    assert not Secret.objects.exists()


def test_it_refuses_a_value_with_an_unpaired_surrogate(cast, keyring):
    with pytest.raises(InvalidInput) as exc:
        make_secret(keyring, cast["secadmin"], value="pass\ud800word")

    assert exc.value.field == "value"


@pytest.mark.parametrize("who", ["requester", "auditor", "svc", "outsider"])
def test_it_lets_only_security_admins_create_key_rings(cast, security_group, who):
    with pytest.raises(NotAllowed):
        services.keyring_create(name="ring-x", security_group=security_group, acting_user=cast[who])

    services.keyring_create(name="ring-x", security_group=security_group, acting_user=cast["secadmin"])
