"""Layers 2 and 3 of expiry (DESIGN.md §8; invariants 6 and 7), with a real worker and broker."""

from __future__ import annotations

import time
from contextlib import contextmanager
from datetime import timedelta
from unittest import mock

import pytest

from approvals import expiry, selectors, services, tasks
from approvals.models import AccessRequest, Grant, GrantCredential, GrantState, RequestState
from jitaccess import clock
from jitaccess.audit.models import AuditEvent
from jitaccess.celery import app
from tests.conftest import approve_through, submit
from tests.worker import celery_processes, wait_for


def expired_events(grant: Grant) -> int:
    return AuditEvent.objects.filter(action="grant.expired", grant_id=grant.pk).count()


def test_the_sweep_expires_overdue_grants_exactly_once(cast, granted):
    grant = granted.grant
    token, _ = services.grant_credential_mint(grant, acting_user=cast["requester"])
    assert expiry.expiry_sweep() == {"grants": 0, "requests": 0}
    now = clock.now()
    Grant.objects.filter(pk=grant.pk).update(
        starts_at=now - timedelta(seconds=10), expires_at=now - timedelta(seconds=5)
    )
    assert expiry.expiry_sweep()["grants"] == 1
    assert expiry.expiry_sweep()["grants"] == 0
    assert expiry.grant_expire(grant.pk) is None
    grant.refresh_from_db()
    assert grant.state == GrantState.EXPIRED
    assert grant.ended_at == grant.expires_at
    assert GrantCredential.objects.get(grant=grant).revoked_at is not None
    assert expired_events(grant) == 1


def test_an_early_expiry_task_changes_nothing(cast, granted):
    wait = expiry.grant_expire(granted.grant.pk)
    assert wait is not None and wait > 0
    granted.grant.refresh_from_db()
    assert granted.grant.state == GrantState.ACTIVE
    assert expired_events(granted.grant) == 0


def test_the_sweep_expires_stale_pending_requests(cast, pending):
    AccessRequest.objects.filter(pk=pending.pk).update(pending_expires_at=clock.now())
    assert expiry.expiry_sweep()["requests"] == 1
    assert expiry.expiry_sweep()["requests"] == 0
    pending.refresh_from_db()
    assert pending.state == RequestState.EXPIRED
    assert AuditEvent.objects.filter(action="request.expired").count() == 1


def test_the_scheduler_hands_due_grants_over_once(cast, entitlement, settings, django_capture_on_commit_callbacks):
    settings.JIT_EXPIRY_HORIZON_SECONDS = 60
    due = approve_through(
        submit(cast["requester"], entitlement, duration_seconds=3600), cast["legal1a"], cast["legal2"]
    ).grant
    later = approve_through(
        submit(cast["requester"], entitlement, duration_seconds=3600), cast["legal1b"], cast["legal2b"]
    ).grant
    Grant.objects.filter(pk=due.pk).update(expires_at=clock.now() + timedelta(seconds=30))
    due.refresh_from_db()

    with mock.patch.object(tasks.expire_grant, "apply_async") as apply_async:
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            assert expiry.schedule_due_expiries() == 1
            # Handed to the broker only once the scheduler's transaction commits.
            apply_async.assert_not_called()
        assert len(callbacks) == 1
        # The task carries the grant's id only, and runs at the grant's expires_at.
        apply_async.assert_called_once_with(args=[due.pk], eta=due.expires_at)

        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            assert expiry.schedule_due_expiries() == 0  # not handed over again while the first is in flight
        assert callbacks == []
        apply_async.assert_called_once()

    due.refresh_from_db()
    later.refresh_from_db()
    assert due.expiry_enqueued_at is not None
    assert later.expiry_enqueued_at is None  # beyond the horizon: left to a later round


@pytest.mark.postgres
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_expires_a_grant_close_to_expires_at(cast, entitlement, tmp_path):
    with celery_processes(tmp_path):
        request = submit(cast["requester"], entitlement, duration_seconds=2)
        request = approve_through(request, cast["legal1a"], cast["legal2"])
        grant = request.grant
        services.grant_credential_mint(grant, acting_user=cast["requester"])
        assert wait_for(lambda: expired_events(grant) == 1, timeout=20)
    grant.refresh_from_db()
    assert grant.state == GrantState.EXPIRED
    assert GrantCredential.objects.get(grant=grant).revoked_at is not None
    event = AuditEvent.objects.get(action="grant.expired", grant_id=grant.pk)
    # The precise path, not the 30 s sweep: generous bound for a loaded CI box.
    assert event.at - grant.expires_at < timedelta(seconds=3), event.data
    assert expired_events(grant) == 1


def queued_messages() -> int:
    """Messages waiting in the broker's default queue."""
    with app.connection_for_read() as connection:
        return connection.default_channel.queue_declare(app.conf.task_default_queue).message_count


@pytest.mark.postgres
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_after_a_worker_outage_every_overdue_grant_expires_once(cast, entitlement, tmp_path):
    app.control.purge()  # so that the broker holds this test's tasks and nothing else
    # Grants are issued and fall due while no worker runs: their queued ETA tasks wait in the
    # broker, and nothing changes state, but the use-time check already refuses them.
    grants = [
        approve_through(
            submit(cast["requester"], entitlement, duration_seconds=1), cast["legal1a"], cast["legal2"]
        ).grant
        for _ in range(5)
    ]
    time.sleep(1.2)
    assert queued_messages() == 5
    assert Grant.objects.filter(state=GrantState.ACTIVE).count() == 5
    assert not selectors.has_access(cast["requester"], entitlement.security_group)

    # Recovery: worker and beat come back to the same broker, not purged, with a short sweep
    # interval; the tasks queued during the outage and the sweep race for the same rows, and
    # each grant still expires exactly once.
    with celery_processes(tmp_path, beat=True, purge=False, extra_env={"JIT_EXPIRY_SWEEP_SECONDS": "2"}):
        assert wait_for(lambda: not Grant.objects.filter(state=GrantState.ACTIVE).exists(), timeout=20)
        time.sleep(2.5)  # one more sweep interval: nothing may be expired twice
    for grant in grants:
        assert expired_events(grant) == 1
    # One sweep expires every overdue grant under one correlation id, while each task runs under
    # its own: more than one id shows that the queued tasks were delivered after the outage.
    expiries = AuditEvent.objects.filter(action="grant.expired", grant_id__in=[g.pk for g in grants])
    assert len(set(expiries.values_list("correlation_id", flat=True))) > 1


@contextmanager
def broker_unreachable():
    """Point the app at a port where no broker listens, as when Redis is down."""
    saved = app.conf.broker_url
    app.conf.broker_url = "redis://127.0.0.1:9/0"
    app._pool = None
    app.amqp._producer_pool = None
    try:
        yield
    finally:
        app.conf.broker_url = saved
        app._pool = None
        app.amqp._producer_pool = None


@pytest.mark.django_db(transaction=True)
def test_an_approval_commits_while_the_broker_is_down_and_the_sweep_expires_it(cast, entitlement, caplog):
    request = approve_through(submit(cast["requester"], entitlement, duration_seconds=1), cast["legal1a"])
    with broker_unreachable():
        request = services.request_decide(request, approver=cast["legal2"], decision="approve")
    grant = Grant.objects.get(request=request)
    assert grant.state == GrantState.ACTIVE  # the approval committed; only the task was lost
    assert f"could not enqueue expiry of grant {grant.pk}" in caplog.text
    time.sleep(1.1)
    assert not selectors.has_access(cast["requester"], entitlement.security_group)
    assert expiry.expiry_sweep()["grants"] == 1
    assert expired_events(grant) == 1
