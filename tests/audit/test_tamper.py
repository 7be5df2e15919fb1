"""Invariant 13: any edit, deletion, insertion or reordering of audit rows is detected, and a
trimmed tail is detected against the signed checkpoint kept outside the database.

The rows are changed the way a database owner could: with the append-only trigger disabled.
"""

from __future__ import annotations

import itertools
import json
import threading
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jitaccess.audit.chain import event_hash, hash_of_row
from jitaccess.audit.checkpoints import checkpoint_write
from jitaccess.audit.models import AuditCheckpoint, AuditEvent
from jitaccess.audit.services import audit_record
from jitaccess.audit.verification import verify_audit, verify_chain

pytestmark = [pytest.mark.postgres]


def tamper(sql: str, params: list | None = None) -> None:
    """Run ``sql`` as a database superuser could: with triggers (the append-only guard) off."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(sql, params or [])
        cursor.execute("SET LOCAL session_replication_role = origin")


def write_events(count: int, start: int = 0) -> None:
    for i in range(start, start + count):
        audit_record("test.event", target_type="thing", target_id=i, data={"n": i, "note": f"événement {i}"})


def rewrite_from(seq: int, **changes: Any) -> None:
    """A careful forger: change event ``seq`` and recompute every later hash and link."""
    rows = list(AuditEvent.objects.filter(seq__gte=seq).order_by("seq"))
    prev = AuditEvent.objects.filter(seq=seq - 1).values_list("hash", flat=True).first() or "0" * 64
    for row in rows:
        if row.seq == seq:
            for name, value in changes.items():
                setattr(row, name, value)
        row.prev_hash = prev
        row.hash = hash_of_row(row)
        tamper(
            "UPDATE audit_auditevent SET action = %s, data = %s, prev_hash = %s, hash = %s WHERE seq = %s",
            [row.action, _json(row.data), row.prev_hash, row.hash, row.seq],
        )
        prev = row.hash


def _json(value: Any) -> str:
    return json.dumps(value)


@pytest.fixture
def chain(db):
    write_events(10)


def verify_command() -> str:
    with pytest.raises(CommandError) as failed:
        call_command("verify_audit")
    return str(failed.value)


def test_verify_audit_passes_an_untouched_chain(chain, capsys):
    checkpoint_write()
    call_command("verify_audit")
    out = capsys.readouterr().out
    assert "10 events verified" in out
    assert "last checkpoint at event 10" in out


def test_it_detects_an_edited_row(chain):
    tamper("UPDATE audit_auditevent SET data = %s WHERE seq = 4", ['{"n": 99}'])
    assert verify_chain().first_invalid_seq == 4
    assert "seq 4" in verify_command()


def test_it_detects_an_edited_row_with_a_recomputed_hash(chain):
    # A forger who recomputes the row's own hash still breaks the link from the next row.
    row = AuditEvent.objects.get(seq=4)
    row.action = "forged"
    tamper("UPDATE audit_auditevent SET action = 'forged', hash = %s WHERE seq = 4", [hash_of_row(row)])
    assert verify_chain().first_invalid_seq == 5


def test_it_detects_a_deleted_row(chain):
    tamper("DELETE FROM audit_auditevent WHERE seq = 6")
    report = verify_chain()
    assert (report.ok, report.first_invalid_seq) == (False, 6)
    assert "seq 6" in verify_command()


def test_it_detects_an_inserted_row(chain):
    tamper("UPDATE audit_auditevent SET seq = seq + 1000 WHERE seq > 5")
    tamper("UPDATE audit_auditevent SET seq = seq - 999 WHERE seq > 1000")
    tamper(
        "INSERT INTO audit_auditevent (seq, at, actor_name, action, target_type, target_id, outcome,"
        " correlation_id, data, prev_hash, hash) SELECT 6, at, '', 'forged', '', '', 'success', '', '{}',"
        " hash, repeat('a', 64) FROM audit_auditevent WHERE seq = 5"
    )
    assert verify_chain().first_invalid_seq == 6


def test_it_detects_reordered_rows(chain):
    tamper("UPDATE audit_auditevent SET seq = -3 WHERE seq = 3")
    tamper("UPDATE audit_auditevent SET seq = 3 WHERE seq = 7")
    tamper("UPDATE audit_auditevent SET seq = 7 WHERE seq = -3")
    assert verify_chain().first_invalid_seq == 3


def test_it_detects_a_forged_row_at_the_tail(chain):
    tamper(
        "INSERT INTO audit_auditevent (seq, at, actor_name, action, target_type, target_id, outcome,"
        " correlation_id, data, prev_hash, hash) SELECT 11, at, '', 'forged', '', '', 'success', '', '{}',"
        " hash, repeat('b', 64) FROM audit_auditevent WHERE seq = 10"
    )
    assert verify_chain().first_invalid_seq == 11


# --- what only the checkpoints catch ------------------------------------------------------------


def test_a_trimmed_tail_is_caught_by_the_checkpoint_though_the_chain_is_consistent(chain):
    checkpoint_write()
    tamper("DELETE FROM audit_auditevent WHERE seq > 7")
    assert verify_chain().ok  # what is left is a consistent chain on its own
    report = verify_audit()
    assert not report.ok
    assert report.first_invalid_seq == 8
    assert "events 8..10 were removed" in report.reason
    assert "seq 8" in verify_command()


def test_a_trimmed_tail_is_caught_by_the_sink_even_when_the_stored_checkpoints_go_too(chain):
    checkpoint_write()
    tamper("DELETE FROM audit_auditevent WHERE seq > 7")
    tamper("DELETE FROM audit_auditcheckpoint")
    report = verify_audit()
    assert (report.ok, report.first_invalid_seq) == (False, 8)
    assert "sink line 1" in report.reason


def test_a_full_rewrite_with_recomputed_hashes_is_caught_by_the_checkpoint(chain):
    write_events(1, start=10)
    checkpoint_write()  # covers 1..11
    write_events(3, start=11)
    checkpoint_write()  # covers 12..14
    rewrite_from(13, action="forged")
    assert verify_chain().ok  # self-consistent
    report = verify_audit()
    assert not report.ok
    # Events up to the earlier checkpoint are vouched for; the rewrite lies after it.
    assert report.first_invalid_seq == 12
    assert "events 12..14 were rewritten" in report.reason


def test_events_written_after_the_last_checkpoint_verify(chain):
    checkpoint_write()
    write_events(5, start=10)
    report = verify_audit()
    assert report.ok, report
    assert (report.checked, report.last_checkpoint["seq"]) == (15, 10)


# --- property: every tampering is detected, an untouched trail never is -------------------------

tamper_op = st.one_of(
    st.tuples(st.just("edit"), st.integers(1, 12)),
    st.tuples(st.just("delete"), st.integers(1, 12)),
    st.tuples(st.just("swap"), st.integers(1, 12), st.integers(1, 12)),
    st.tuples(st.just("insert"), st.integers(1, 12)),
    st.tuples(st.just("truncate"), st.integers(1, 4)),
    st.tuples(st.just("rewrite"), st.integers(1, 12)),
)


_forgeries = itertools.count()


def _snapshot() -> list[tuple[Any, ...]]:
    return list(AuditEvent.objects.order_by("seq").values_list("seq", "action", "data", "prev_hash", "hash"))


def _apply(op: tuple[Any, ...]) -> None:
    head = AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0
    kind = op[0]
    if head == 0:
        return
    if kind == "edit":
        tamper("UPDATE audit_auditevent SET data = %s WHERE seq = %s", ['{"n": "forged"}', min(op[1], head)])
    elif kind == "delete":
        tamper("DELETE FROM audit_auditevent WHERE seq = %s", [min(op[1], head)])
    elif kind == "swap":
        a, b = min(op[1], head), min(op[2], head)
        tamper("UPDATE audit_auditevent SET seq = -1 WHERE seq = %s", [a])
        tamper("UPDATE audit_auditevent SET seq = %s WHERE seq = %s", [a, b])
        tamper("UPDATE audit_auditevent SET seq = %s WHERE seq = -1", [b])
    elif kind == "insert":
        # Inside the signed range. A row appended after the newest checkpoint, with a correct
        # hash, is indistinguishable from a real event until nothing vouches otherwise: the limit
        # docs/AUDIT.md states (checkpoints every JIT_AUDIT_CHECKPOINT_SECONDS narrow it).
        at = min(op[1], head - 1)
        if at < 1 or not AuditEvent.objects.filter(seq=at).exists():
            return
        tamper("UPDATE audit_auditevent SET seq = -seq WHERE seq > %s", [at])
        tamper("UPDATE audit_auditevent SET seq = -seq + 1 WHERE seq < 0")
        prev = AuditEvent.objects.get(seq=at)
        fields = {
            "seq": at + 1,
            "at": prev.at,
            "actor_id": None,
            "actor_name": "",
            "action": "forged",
            "target_type": "",
            "target_id": "",
            "grant_id": None,
            "outcome": "success",
            "ip": None,
            "correlation_id": "",
            "data": {"forged": next(_forgeries)},  # each forged row distinct (hash is unique)
            "prev_hash": prev.hash,
        }
        tamper(
            "INSERT INTO audit_auditevent (seq, at, actor_name, action, target_type, target_id, outcome,"
            " correlation_id, data, prev_hash, hash)"
            " VALUES (%s, %s, '', 'forged', '', '', 'success', '', %s, %s, %s)",
            [at + 1, prev.at, _json(fields["data"]), prev.hash, event_hash(**fields)],
        )
    elif kind == "truncate":
        tamper("DELETE FROM audit_auditevent WHERE seq > %s", [max(head - op[1], 0)])
    elif kind == "rewrite":
        rewrite_from(min(op[1], head), action="forged")


def _fresh_trail(length: int, checkpoint_at: int | None) -> None:
    tamper("DELETE FROM audit_auditevent")
    tamper("DELETE FROM audit_auditcheckpoint")
    from django.conf import settings as django_settings

    open(django_settings.JIT_AUDIT_SINK, "w").close()
    write_events(length)
    if checkpoint_at is not None:
        checkpoint_write()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(length=st.integers(2, 12), ops=st.lists(tamper_op, min_size=1, max_size=4))
def test_any_tampering_with_a_checkpointed_trail_is_detected(db, length, ops):
    _fresh_trail(length, checkpoint_at=length)
    before = _snapshot()
    for op in ops:
        _apply(op)
    # Rows forged after the newest checkpoint are out of reach (docs/AUDIT.md says so): the
    # promise is about the signed prefix, which must come back unchanged or be reported.
    changed = [row for row in _snapshot() if row[0] <= length] != before
    report = verify_audit()
    assert report.ok is not changed, (ops, report)
    if changed:
        assert report.first_invalid_seq is not None


# PostgreSQL text and jsonb cannot hold NUL; the services refuse it before it reaches the trail.
text = st.text(alphabet=st.characters(blacklist_characters="\x00"), max_size=20)
record_op = st.one_of(
    st.tuples(
        st.just("event"),
        text,
        st.dictionaries(
            text.filter(bool),
            st.one_of(st.integers(-(2**53), 2**53), text, st.booleans(), st.none(), st.lists(text, max_size=3)),
            max_size=3,
        ),
    ),
    st.tuples(st.just("checkpoint")),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(record_op, min_size=1, max_size=20))
def test_an_untouched_trail_always_verifies(db, ops):
    """Zero false positives: arbitrary text, nesting and checkpoint timing never fail verification."""
    _fresh_trail(0, checkpoint_at=None)
    for op in ops:
        if op[0] == "event":
            try:
                with transaction.atomic():
                    audit_record("test.event", target_id=op[1], data=op[2])
            except ValueError:
                continue  # secret-looking keys are refused by design, not a verification matter
        else:
            checkpoint_write()
    report = verify_audit()
    assert report.ok, report
    assert AuditCheckpoint.objects.count() <= len(ops)


# --- the parallel walk used for long trails gives the same answers --------------------------------


def tamper_committed(sql: str, params: list | None = None) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
        try:
            cursor.execute(sql, params or [])
        finally:
            cursor.execute("SET session_replication_role = origin")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "sql, first_invalid",
    [
        (None, None),
        ("UPDATE audit_auditevent SET data = '{\"n\": 0}' WHERE seq = 37", 37),  # inside the second segment
        ("DELETE FROM audit_auditevent WHERE seq = 21", 21),  # the first row of the second segment
        ("UPDATE audit_auditevent SET prev_hash = repeat('c', 64) WHERE seq = 21", 21),  # the link across
        ("UPDATE audit_auditevent SET action = 'forged' WHERE seq = 3", 3),
    ],
)
def test_the_parallel_walk_finds_what_the_sequential_walk_finds(settings, sql, first_invalid):
    settings.JIT_AUDIT_VERIFY_PARALLEL_FROM = 2
    settings.JIT_AUDIT_VERIFY_PROCESSES = 2
    assert threading.active_count() == 1  # else verify_audit would walk in one process
    write_events(40)
    if sql:
        tamper_committed(sql)
    sequential = verify_chain()
    parallel = verify_audit()
    assert (parallel.ok, parallel.first_invalid_seq) == (sequential.ok, sequential.first_invalid_seq)
    assert parallel.first_invalid_seq == first_invalid
    assert parallel.checked == sequential.checked


@pytest.mark.django_db(transaction=True)
def test_a_threaded_process_verifies_without_forking(settings, monkeypatch):
    """A threaded web worker must not fork: verification walks in one process there."""
    settings.JIT_AUDIT_VERIFY_PARALLEL_FROM = 2
    write_events(10)

    def no_pool(*args, **kwargs):
        raise AssertionError("forked from a threaded process")

    monkeypatch.setattr("jitaccess.audit.verification.ProcessPoolExecutor", no_pool)
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        report = verify_audit()
    finally:
        release.set()
        other.join()
    assert report.ok and report.checked == 10
