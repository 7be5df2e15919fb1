"""The audit chain core: fail closed (invariant 12), tamper evidence, no fork under concurrency."""

from __future__ import annotations

from threading import Event, Thread

import pytest
from django.db import OperationalError, connection, transaction

from approvals import services
from approvals.models import AccessRequest, Decision, Grant
from jitaccess.audit import services as audit_services
from jitaccess.audit.chain import GENESIS_HASH
from jitaccess.audit.context import audit_context
from jitaccess.audit.models import AuditEvent
from jitaccess.audit.services import audit_record
from jitaccess.audit.verification import verify_chain
from tests.conftest import approve_through, submit
from tests.threads import run_concurrently


def write_events(count: int) -> None:
    for i in range(count):
        audit_record("test.event", target_type="thing", target_id=i, data={"n": i})


def raw(sql: str, params: list | None = None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])


# --- the chain ----------------------------------------------------------------------------------


def test_it_links_every_event_to_the_one_before(db):
    write_events(3)
    first, second, third = AuditEvent.objects.order_by("seq")
    assert [first.seq, second.seq, third.seq] == [1, 2, 3]
    assert first.prev_hash == GENESIS_HASH
    assert second.prev_hash == first.hash and third.prev_hash == second.hash
    assert verify_chain().ok and verify_chain().checked == 3


def test_it_records_context_ip_and_correlation_id(db, cast):
    with audit_context(correlation_id="corr-12345678", ip="192.0.2.7"):
        event = audit_record("test.event", actor=cast["auditor"])
    assert (event.ip, event.correlation_id, event.actor_name) == ("192.0.2.7", "corr-12345678", "auditor")


def test_http_requests_carry_their_correlation_id_into_events(cast, entitlement, api):
    api.force_authenticate(cast["requester"])
    response = api.post(
        "/api/v1/requests/",
        {"entitlement": "dkm-test", "purpose": "debugging", "justification": "j", "ticket": "T-1"},
        format="json",
        HTTP_X_REQUEST_ID="client-req-000123",
    )
    assert response.status_code == 201
    assert response["X-Request-ID"] == "client-req-000123"
    event = AuditEvent.objects.get(action="request.submitted")
    assert event.correlation_id == "client-req-000123"
    assert event.ip == "127.0.0.1"


def test_time_never_runs_backwards_along_the_chain(db, monkeypatch):
    """A clock stepped back stamps the previous event's time, so a time window is a seq range."""
    from datetime import UTC, datetime, timedelta

    from jitaccess.audit.selectors import EventFilters, events_matching

    start = datetime(2031, 1, 1, 12, 0, tzinfo=UTC)
    for minutes in (0, 10, 5, 20):  # the third reading steps back five minutes
        monkeypatch.setattr("jitaccess.clock.now", lambda m=minutes: start + timedelta(minutes=m))
        audit_record("test.event", data={"minutes": minutes})
    times = list(AuditEvent.objects.order_by("seq").values_list("at", flat=True))
    assert [t - start for t in times] == [timedelta(minutes=m) for m in (0, 10, 10, 20)]
    assert verify_chain().ok
    window = EventFilters(since=start + timedelta(minutes=6), until=start + timedelta(minutes=15))
    assert [e.data["minutes"] for e in events_matching(window)] == [10, 5]


@pytest.mark.parametrize("key", ["password", "token", "credential", "value", "secret"])
def test_it_refuses_secret_looking_data(db, key):
    with pytest.raises(ValueError):
        audit_record("test.event", data={"nested": {key: "hunter2"}})
    assert not AuditEvent.objects.exists()


def test_the_orm_cannot_change_or_delete_events(db):
    write_events(2)
    event = AuditEvent.objects.first()
    event.action = "forged"
    with pytest.raises(PermissionError):
        event.save()
    with pytest.raises(PermissionError):
        event.delete()
    with pytest.raises(PermissionError):
        AuditEvent.objects.filter(seq=1).update(action="forged")
    with pytest.raises(PermissionError):
        AuditEvent.objects.all().delete()
    assert verify_chain().ok


# --- invariant 12: fail closed ------------------------------------------------------------------


def test_an_action_whose_audit_event_fails_does_not_happen(cast, entitlement, monkeypatch):
    request = approve_through(submit(cast["requester"], entitlement), cast["legal1a"])
    before = AuditEvent.objects.count()
    real_save = AuditEvent.save

    def failing_save(self, *args, **kwargs):
        if self.action == "grant.issued":
            raise RuntimeError("audit store unavailable")
        return real_save(self, *args, **kwargs)

    monkeypatch.setattr(AuditEvent, "save", failing_save)
    with pytest.raises(RuntimeError):
        services.request_decide(request, approver=cast["legal2"], decision="approve")
    request.refresh_from_db()
    assert request.state == "pending" and request.current_stage == 2
    assert not Grant.objects.exists()
    assert not Decision.objects.filter(stage_order=2).exists()
    assert AuditEvent.objects.count() == before


def test_a_submission_whose_audit_event_fails_is_not_stored(cast, entitlement, monkeypatch):
    def refuse(*args, **kwargs):
        raise RuntimeError("audit store unavailable")

    monkeypatch.setattr("approvals.services.audit_record", refuse)
    with pytest.raises(RuntimeError):
        submit(cast["requester"], entitlement)
    assert not AccessRequest.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_database_failure_on_the_audit_insert_fails_the_action_closed(cast, entitlement):
    # A real database failure, not a patched function: another session holds the audit table,
    # so the audit insert times out, and the approval and its grant roll back with it.
    request = approve_through(submit(cast["requester"], entitlement), cast["legal1a"])
    before = AuditEvent.objects.count()
    locked, release = Event(), Event()

    def hold_lock() -> None:
        with transaction.atomic():
            raw("LOCK TABLE audit_auditevent IN ACCESS EXCLUSIVE MODE")
            locked.set()
            release.wait(20)
        connection.close()

    holder = Thread(target=hold_lock)
    holder.start()
    assert locked.wait(10)
    raw("SET lock_timeout = '300ms'")
    try:
        with pytest.raises(OperationalError):
            services.request_decide(request, approver=cast["legal2"], decision="approve")
    finally:
        raw("RESET lock_timeout")
        release.set()
        holder.join()
    request.refresh_from_db()
    assert (request.state, request.current_stage) == ("pending", 2)
    assert not Grant.objects.exists()
    assert not Decision.objects.filter(stage_order=2).exists()
    assert AuditEvent.objects.count() == before


# --- concurrency: the chain never forks ---------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_sixteen_concurrent_writers_keep_one_gapless_chain():
    def writer(n: int):
        def run() -> None:
            for i in range(50):
                audit_services.audit_record("test.concurrent", target_type="writer", target_id=n, data={"i": i})

        return run

    results = run_concurrently([writer(n) for n in range(16)], timeout=120)
    assert not [r for r in results if isinstance(r, Exception)], results
    report = verify_chain()
    assert report.ok, report
    assert report.checked == 800
    assert list(AuditEvent.objects.order_by("seq").values_list("seq", flat=True)) == list(range(1, 801))
