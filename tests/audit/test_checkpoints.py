"""Signed checkpoints of the chain head: written to the database and to the sink outside it,
safe on several beat hosts, and checked by verification (signature, trusted key, presence)."""

from __future__ import annotations

import base64
import json
import socket
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from jitaccess.audit.checkpoints import checkpoint_write
from jitaccess.audit.models import AuditCheckpoint
from jitaccess.audit.services import audit_record
from jitaccess.audit.signing import signature_problem, signing_public_key
from jitaccess.audit.verification import verify_audit
from jitaccess.celery import app
from tests.threads import run_concurrently

OTHER_SEED = base64.b64encode(b"another-signing-seed-32-bytes-ok").decode()


def write_events(count: int) -> None:
    for i in range(count):
        audit_record("test.event", target_type="thing", target_id=i)


def sink_entries(path: Any) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def tamper(sql: str, params: list | None = None) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(sql, params or [])
        cursor.execute("SET LOCAL session_replication_role = origin")


def test_a_checkpoint_signs_the_head_in_the_database_and_the_sink(db, checkpoint_sink):
    write_events(3)
    checkpoint = checkpoint_write()
    assert checkpoint.seq == 3
    [entry] = sink_entries(checkpoint_sink)
    assert entry == {
        "seq": 3,
        "head_hash": checkpoint.head_hash,
        "at": entry["at"],
        "public_key": signing_public_key(),
        "signature": checkpoint.signature,
    }
    assert verify_audit().ok


def test_nothing_is_signed_twice_when_the_head_has_not_moved(db, checkpoint_sink):
    assert checkpoint_write() is None  # empty trail
    write_events(2)
    checkpoint_write()
    assert checkpoint_write() is None
    write_events(1)
    assert checkpoint_write().seq == 3
    assert [e["seq"] for e in sink_entries(checkpoint_sink)] == [2, 3]


def test_the_signature_covers_every_field(db):
    write_events(1)
    checkpoint = checkpoint_write()
    good = {
        "seq": checkpoint.seq,
        "head_hash": checkpoint.head_hash,
        "at": checkpoint.at,
        "public_key": checkpoint.public_key,
        "signature": checkpoint.signature,
    }
    assert signature_problem(**good) is None
    for name, forged in [("seq", 2), ("head_hash", "f" * 64), ("at", checkpoint.at.replace(year=2020))]:
        assert signature_problem(**{**good, name: forged}) == "signature does not verify"
    assert signature_problem(**{**good, "public_key": "ab" * 32}) == "signed by a key that is not trusted"


def test_a_checkpoint_forged_in_the_database_is_reported(db):
    write_events(2)
    checkpoint_write()
    tamper("UPDATE audit_auditcheckpoint SET head_hash = %s", ["e" * 64])
    report = verify_audit()
    assert not report.ok
    assert "checkpoint (database) signature does not verify" in report.problems


def test_an_edited_sink_line_is_reported(db, checkpoint_sink):
    write_events(2)
    checkpoint_write()
    entry = sink_entries(checkpoint_sink)[0]
    checkpoint_sink.write_text(json.dumps({**entry, "seq": 1}) + "\n" + "not json\n")
    report = verify_audit()
    assert not report.ok
    assert "checkpoint (sink line 1) signature does not verify" in report.problems
    assert "checkpoint (sink line 2) is not a well-formed checkpoint" in report.problems
    assert "checkpoint for event 2 is in the database but not in the sink" in report.problems


def test_a_checkpoint_by_a_retired_key_verifies_only_while_that_key_is_trusted(db, settings):
    write_events(2)
    old_public = signing_public_key()
    checkpoint_write()
    settings.JIT_AUDIT_SIGNING_KEY = base64.b64decode(OTHER_SEED)
    write_events(1)
    checkpoint_write()
    report = verify_audit()
    assert not report.ok
    assert report.problems.count("checkpoint (database) signed by a key that is not trusted") == 1
    settings.JIT_AUDIT_TRUSTED_KEYS = [old_public]
    assert verify_audit().ok


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_beat_hosts_signing_at_once_write_one_checkpoint(checkpoint_sink):
    write_events(5)
    results = run_concurrently([checkpoint_write] * 4, timeout=60)
    assert not [r for r in results if isinstance(r, Exception)], results
    assert [r.seq for r in results if r is not None] == [5]
    assert AuditCheckpoint.objects.count() == 1
    assert len(sink_entries(checkpoint_sink)) == 1


def test_a_failing_sink_stores_no_checkpoint(db, settings, tmp_path):
    write_events(1)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    settings.JIT_AUDIT_SINK = str(blocker / "cannot-be-under-a-file.jsonl")
    with pytest.raises(OSError):
        checkpoint_write()
    assert not AuditCheckpoint.objects.exists()


def test_a_syslog_sink_receives_each_checkpoint(db, settings):
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(5)
    settings.JIT_AUDIT_SINK = f"syslog://127.0.0.1:{receiver.getsockname()[1]}"
    try:
        write_events(2)
        checkpoint = checkpoint_write()
        message = receiver.recv(65536).decode()
    finally:
        receiver.close()
    assert "jitaccess-audit-checkpoint" in message
    assert checkpoint.signature in message
    # Verification cannot read syslog back; it checks the database copies.
    report = verify_audit()
    assert report.ok and report.checkpoints_checked == 1


def test_beat_runs_the_checkpoint_task():
    entry = settings.CELERY_BEAT_SCHEDULE["audit-checkpoint"]
    assert entry["task"] in app.tasks
    assert entry["schedule"].total_seconds() == settings.JIT_AUDIT_CHECKPOINT_SECONDS


def test_the_checkpoint_task_signs_the_head(db):
    from jitaccess.audit.tasks import audit_checkpoint

    write_events(4)
    assert audit_checkpoint.apply().get() == 4
    assert audit_checkpoint.apply().get() is None


def test_the_checkpoint_command_signs_now(db, capsys):
    from django.core.management import call_command

    write_events(2)
    call_command("audit_checkpoint")
    assert "signed checkpoint at event 2" in capsys.readouterr().out
    call_command("audit_checkpoint")
    assert "nothing new to sign" in capsys.readouterr().out


def test_the_orm_cannot_change_or_delete_checkpoints(db):
    write_events(1)
    checkpoint = checkpoint_write()
    checkpoint.head_hash = "0" * 64
    for attempt in (
        checkpoint.save,
        checkpoint.delete,
        lambda: AuditCheckpoint.objects.update(head_hash="0" * 64),
        lambda: AuditCheckpoint.objects.all().delete(),
    ):
        with pytest.raises(PermissionError):
            attempt()
    assert verify_audit().ok
