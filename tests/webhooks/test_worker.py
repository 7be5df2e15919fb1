"""Deliveries with a real Celery worker (and beat) and a real receiver: sent after commit and never
after a rollback, retried with backoff until delivered, failed and shown when the receiver never
recovers, and still sent when the broker was down while the workflow acted."""

from __future__ import annotations

import time

import pytest
from django.db import transaction

from jitaccess.audit.models import AuditEvent
from jitaccess.webhooks import signing
from jitaccess.webhooks.models import DeliveryStatus, WebhookDelivery
from tests.accounts.conftest import signed_in
from tests.approvals.test_expiry import broker_unreachable
from tests.conftest import submit
from tests.web.conftest import by_id, table_rows, text_of
from tests.worker import celery_processes, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

FAST_RETRIES = {"JIT_WEBHOOK_BACKOFF_SECONDS": "1", "JIT_WEBHOOK_BACKOFF_MAX_SECONDS": "2"}


def settled(delivery: WebhookDelivery) -> bool:
    delivery.refresh_from_db()
    return delivery.status != DeliveryStatus.PENDING


def test_the_receiver_gets_the_event_after_commit_and_nothing_from_a_rollback(
    cast, entitlement, endpoint, receiver, tmp_path
):
    with celery_processes(tmp_path):
        with pytest.raises(RuntimeError), transaction.atomic():
            submit(cast["requester"], entitlement, ticket="INC-ROLLED-BACK")
            raise RuntimeError("the caller fails after the action")
        request = submit(cast["requester"], entitlement)
        assert wait_for(lambda: receiver.requests, timeout=30)
        time.sleep(1)  # room for anything the rolled-back action could still have sent
    [got] = receiver.requests
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == DeliveryStatus.DELIVERED and delivery.payload["target"]["id"] == str(request.pk)
    assert signing.signature_valid(endpoint.secret, got.body, got.headers["X-Jitaccess-Signature"])
    assert b"INC-ROLLED-BACK" not in got.body


def test_a_receiver_answering_500_twice_then_200_is_retried_until_delivered(
    cast, entitlement, endpoint, receiver, tmp_path
):
    receiver.answers = [500, 500, 200]
    with celery_processes(tmp_path, extra_env=FAST_RETRIES):
        submit(cast["requester"], entitlement)
        delivery = WebhookDelivery.objects.get()
        assert wait_for(lambda: settled(delivery), timeout=40)
    assert delivery.status == DeliveryStatus.DELIVERED and delivery.attempts == 3
    assert len(receiver.requests) == 3
    assert {r.headers["X-Jitaccess-Delivery"] for r in receiver.requests} == {str(delivery.uuid)}
    # Each attempt is signed anew, and every signature holds.
    for got in receiver.requests:
        assert signing.signature_valid(endpoint.secret, got.body, got.headers["X-Jitaccess-Signature"])


def test_a_receiver_that_never_recovers_ends_failed_audited_and_shown_to_security_admins(
    cast, entitlement, endpoint, receiver, tmp_path
):
    receiver.answers = [502]
    with celery_processes(tmp_path, extra_env={**FAST_RETRIES, "JIT_WEBHOOK_MAX_ATTEMPTS": "3"}):
        request = submit(cast["requester"], entitlement)
        delivery = WebhookDelivery.objects.get()
        assert wait_for(lambda: settled(delivery), timeout=40)
        assert delivery.status == DeliveryStatus.FAILED and delivery.attempts == 3 and len(receiver.requests) == 3
        [failed] = AuditEvent.objects.filter(action="webhook.delivery_failed")
        assert failed.data["delivery"] == str(delivery.uuid) and failed.data["last_status_code"] == 502
        request.refresh_from_db()
        assert request.state == "pending"  # the workflow never waited for the receiver

        admin = signed_in(cast["secadmin"])
        listed = admin.get("/security/webhooks/")
        assert "Webhooks (1 failed)" in listed.content.decode()  # in the header of every page
        assert table_rows(listed, "Webhooks")[0][4] == "1 failed"
        page = admin.get(f"/security/webhooks/{endpoint.endpoint.pk}/?status=failed")
        assert "1 delivery failed" in text_of(by_id(page, "failed-deliveries"))
        [row] = table_rows(page, "Deliveries")
        assert row[2] == "failed" and row[3] == "3" and row[4].startswith("HTTP 502")

        # The receiver is back: sending it again from the page delivers it.
        receiver.answers = [200]
        sent = admin.post(f"/security/webhooks/deliveries/{delivery.pk}/redeliver/")
        assert sent.status_code == 302
        assert wait_for(lambda: settled(delivery), timeout=30)
    assert delivery.status == DeliveryStatus.DELIVERED and len(receiver.requests) == 4
    assert "failed" not in signed_in(cast["secadmin"]).get("/security/webhooks/").content.decode().split("<main")[0]


def test_the_workflow_acts_while_the_broker_is_down_and_beat_sends_the_event_later(
    cast, entitlement, endpoint, receiver, tmp_path, caplog
):
    with broker_unreachable():
        request = submit(cast["requester"], entitlement)
    assert request.pk  # committed; only the task was lost
    delivery = WebhookDelivery.objects.get()
    assert f"could not enqueue webhook delivery {delivery.pk}" in caplog.text
    assert not receiver.requests

    with celery_processes(tmp_path, beat=True, extra_env={"JIT_WEBHOOK_SWEEP_SECONDS": "1"}):
        assert wait_for(lambda: settled(delivery), timeout=40)
    assert delivery.status == DeliveryStatus.DELIVERED and delivery.attempts == 1
    assert len(receiver.requests) == 1
