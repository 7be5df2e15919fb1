"""Automated rollover: the maintenance beat job, and a real worker finishing a rotation's rewrap."""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest

from jitaccess.audit.models import AuditEvent
from keys import services, tasks
from keys.models import KeyRing, KeyState, KeyVersion, Secret
from keys.reveal import secret_reveal
from tests.keys.conftest import make_secret
from tests.worker import celery_processes, wait_for


def states(keyring: Any) -> dict[int, str]:
    return dict(KeyVersion.objects.filter(keyring=keyring).values_list("version", "state"))


def test_maintenance_rotates_due_rings_and_finishes_their_rewrap(cast, keyring, secret):
    KeyRing.objects.filter(pk=keyring.pk).update(next_rotation_at=keyring.rotated_at)

    with mock.patch.object(tasks.rewrap_keyring, "delay", side_effect=tasks.rewrap_keyring) as enqueue:
        outcome = tasks.key_maintenance()

    assert outcome == {"rotated": [keyring.name], "rewrapping": [keyring.name]}
    enqueue.assert_called_once_with(keyring.pk)
    assert states(keyring) == {1: KeyState.ARCHIVED, 2: KeyState.PRIMARY}
    assert Secret.objects.get(pk=secret.pk).key_version == 2
    assert secret_reveal(secret.pk, acting_user=cast["svc"], reason="after rollover").value == "s3cret-value"


def test_maintenance_resumes_a_rewrap_that_never_ran(cast, keyring, secret):
    services.keyring_rotate(keyring, acting_user=None)  # its on-commit rewrap is lost (no worker, no commit)

    with mock.patch.object(tasks.rewrap_keyring, "delay", side_effect=tasks.rewrap_keyring):
        assert tasks.key_maintenance() == {"rotated": [], "rewrapping": [keyring.name]}
        assert tasks.key_maintenance() == {"rotated": [], "rewrapping": []}  # nothing left: safe to repeat

    assert states(keyring) == {1: KeyState.ARCHIVED, 2: KeyState.PRIMARY}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_rewraps_and_archives_after_a_rotation(cast, entitlement, security_group, tmp_path):
    keyring = services.keyring_create(name="ring-worker", security_group=security_group, acting_user=None)
    secrets = [make_secret(keyring, cast["secadmin"], name=f"s{i}", value=f"v{i}") for i in range(5)]

    with celery_processes(tmp_path):
        services.keyring_rotate(keyring, acting_user=cast["secadmin"])  # commits, then enqueues the rewrap
        assert wait_for(lambda: states(keyring) == {1: KeyState.ARCHIVED, 2: KeyState.PRIMARY}, timeout=30)

    assert set(Secret.objects.filter(keyring=keyring).values_list("key_version", flat=True)) == {2}
    for index, secret in enumerate(secrets):
        assert secret_reveal(secret.pk, acting_user=cast["svc"], reason="after rollover").value == f"v{index}"
    assert AuditEvent.objects.filter(action="key.rewrapped", target_id=keyring.name).exists()
    assert AuditEvent.objects.filter(action="key.archived", target_id=keyring.name).count() == 1
