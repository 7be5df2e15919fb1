"""Endpoints and deliveries through the services, with a real HTTP receiver: who gets what,
signed how, retried when, claimed once, failed and audited, and no secret in clear anywhere."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from unittest import mock

import pytest
from django.db import transaction

from approvals import services as approval_services
from jitaccess import clock
from jitaccess.audit.models import AuditEvent
from jitaccess.errors import Conflict, InvalidInput, NotAllowed
from jitaccess.webhooks import dispatch, signing
from jitaccess.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from jitaccess.webhooks.services import (
    delivery_attempt,
    delivery_redeliver,
    endpoint_create,
    endpoint_deactivate,
    endpoint_secret_rotate,
    endpoint_update,
)
from jitaccess.webhooks.tasks import send_delivery
from keys import services as key_services
from keys.kek import kek_cache_clear
from keys.models import KeyRing, Secret
from tests.conftest import approve_through, submit
from tests.stores import database_dump, redis_dump
from tests.threads import run_concurrently


def only_delivery(action: str) -> WebhookDelivery:
    return WebhookDelivery.objects.get(action=action)


def events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("seq"))


# --- which events go where ----------------------------------------------------------------------


def test_a_workflow_event_makes_one_delivery_per_subscribed_active_endpoint(
    cast, entitlement, endpoint, receiver, django_capture_on_commit_callbacks
):
    _, grants_only = endpoint_create(
        name="grants", url=receiver.url, events=["grant.issued"], acting_user=cast["secadmin"]
    )
    _, gone = endpoint_create(name="gone", url=receiver.url, events=["request.submitted"], acting_user=cast["secadmin"])
    endpoint_deactivate(gone, acting_user=cast["secadmin"])

    with mock.patch.object(send_delivery, "apply_async") as enqueued, django_capture_on_commit_callbacks(execute=True):
        request = submit(cast["requester"], entitlement)
        assert not enqueued.called  # not before the commit
    delivery = only_delivery("request.submitted")
    assert delivery.endpoint == endpoint.endpoint
    enqueued.assert_called_once_with(args=[delivery.pk, 1])
    event = events("request.submitted")[0]
    assert delivery.event == event and delivery.status == DeliveryStatus.PENDING and delivery.attempts == 0
    assert delivery.payload == {
        "event": "request.submitted",
        "audit_seq": event.seq,
        "occurred_at": event.at.isoformat(),
        "actor": "requester",
        "target": {"type": "access_request", "id": str(request.pk)},
        "grant_id": None,
        "outcome": "success",
        "data": event.data,
    }

    approve_through(request, cast["legal1a"], cast["legal2"])
    issued = WebhookDelivery.objects.filter(action="grant.issued")
    assert sorted(issued.values_list("endpoint__name", flat=True)) == ["grants", "siem"]
    assert not WebhookDelivery.objects.filter(endpoint=gone).exists()


def test_an_action_rolled_back_leaves_no_delivery_and_enqueues_nothing(
    cast, entitlement, endpoint, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as enqueued, pytest.raises(RuntimeError):
        with transaction.atomic():
            submit(cast["requester"], entitlement)
            raise RuntimeError("the caller fails after the action")
    assert not WebhookDelivery.objects.exists() and not enqueued


# --- attempts -----------------------------------------------------------------------------------


def test_an_attempt_posts_signed_json_and_marks_the_delivery_delivered(cast, entitlement, endpoint, receiver):
    submit(cast["requester"], entitlement)
    delivery = only_delivery("request.submitted")

    assert delivery_attempt(delivery.pk, 1) == DeliveryStatus.DELIVERED

    [got] = receiver.requests
    assert got.headers["X-Jitaccess-Event"] == "request.submitted"
    assert got.headers["X-Jitaccess-Delivery"] == str(delivery.uuid)
    assert got.headers["Content-Type"] == "application/json"
    assert signing.signature_valid(endpoint.secret, got.body, got.headers["X-Jitaccess-Signature"])
    assert json.loads(got.body) == {"id": str(delivery.uuid), **delivery.payload}
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED and delivery.attempts == 1
    assert delivery.last_status_code == 200 and delivery.delivered_at is not None and delivery.next_attempt_at is None


def test_an_attempt_is_made_once_however_often_its_task_arrives(cast, entitlement, endpoint, receiver):
    submit(cast["requester"], entitlement)
    delivery = only_delivery("request.submitted")
    assert delivery_attempt(delivery.pk, 1) == DeliveryStatus.DELIVERED
    assert delivery_attempt(delivery.pk, 1) is None
    assert delivery_attempt(delivery.pk, 2) is None  # delivered: nothing more to attempt
    assert len(receiver.requests) == 1


def test_a_failing_receiver_is_retried_with_backoff_then_the_delivery_fails_and_is_audited(
    cast, entitlement, endpoint, receiver, settings, django_capture_on_commit_callbacks
):
    settings.JIT_WEBHOOK_MAX_ATTEMPTS = 2
    settings.JIT_WEBHOOK_BACKOFF_SECONDS = 10
    receiver.answers = [500]
    submit(cast["requester"], entitlement)
    delivery = only_delivery("request.submitted")

    before = clock.now()
    with django_capture_on_commit_callbacks() as retry:
        assert delivery_attempt(delivery.pk, 1) == DeliveryStatus.PENDING
    delivery.refresh_from_db()
    assert delivery.last_status_code == 500 and delivery.last_error == "HTTP 500: receiver says no try later"
    assert timedelta(seconds=7) <= delivery.next_attempt_at - before <= timedelta(seconds=13)  # 10 s ± 25 %
    assert len(retry) == 1  # handed back to the broker with a countdown
    assert not events("webhook.delivery_failed")

    assert delivery_attempt(delivery.pk, 2) == DeliveryStatus.FAILED
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED and delivery.attempts == 2 and delivery.next_attempt_at is None
    [failed] = events("webhook.delivery_failed")
    assert failed.data["delivery"] == str(delivery.uuid) and failed.data["attempts"] == 2
    assert failed.data["last_status_code"] == 500 and failed.target_id == str(endpoint.endpoint.pk)
    assert len(receiver.requests) == 2
    # Every attempt carries the same delivery id, so the receiver can drop duplicates.
    assert {r.headers["X-Jitaccess-Delivery"] for r in receiver.requests} == {str(delivery.uuid)}


def test_a_redirect_is_not_followed(cast, entitlement, endpoint, receiver):
    receiver.answers = [302, 200]
    submit(cast["requester"], entitlement)
    delivery = only_delivery("request.submitted")
    assert delivery_attempt(delivery.pk, 1) == DeliveryStatus.PENDING
    assert len(receiver.requests) == 1  # the Location it named was never asked
    delivery.refresh_from_db()
    assert delivery.last_status_code == 302


def test_an_unreachable_receiver_is_an_attempt_that_failed(cast, entitlement, endpoint):
    endpoint_update(endpoint.endpoint, url="http://127.0.0.1:9/closed", acting_user=cast["secadmin"])
    submit(cast["requester"], entitlement)
    delivery = only_delivery("request.submitted")
    assert delivery_attempt(delivery.pk, 1) == DeliveryStatus.PENDING
    delivery.refresh_from_db()
    assert delivery.last_status_code is None and "refused" in delivery.last_error.lower()


def test_the_sweep_hands_a_due_delivery_over_once(cast, entitlement, endpoint, django_capture_on_commit_callbacks):
    submit(cast["requester"], entitlement)
    delivery = only_delivery("request.submitted")
    assert dispatch.webhook_sweep() == 0  # its first task is in flight
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=clock.now() - timedelta(seconds=1))

    with django_capture_on_commit_callbacks() as enqueued:
        assert dispatch.webhook_sweep() == 1
        assert dispatch.webhook_sweep() == 0
    assert len(enqueued) == 1
    delivery.refresh_from_db()
    assert delivery.next_attempt_at > clock.now() + timedelta(seconds=50)


# --- managing endpoints -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"url": "ftp://siem.example.com/hook"}, "url"),
        ({"url": "https://user:pw@siem.example.com/hook"}, "url"),
        ({"url": "https://siem.example.com@evil.example/hook"}, "url"),
        ({"url": "https:///no-host"}, "url"),
        ({"url": "https://siem.example.com:99999/"}, "url"),
        ({"url": "https://siem.example.com/a b"}, "url"),
        ({"url": ""}, "url"),
        ({"events": []}, "events"),
        ({"events": ["grant.issued", "secret.revealed"]}, "events"),
        ({"events": "grant.issued"}, "events"),
        ({"name": "  "}, "name"),
    ],
)
def test_bad_input_is_refused_naming_the_field(cast, fields, field):
    good = {"name": "siem", "url": "https://siem.example.com/hook", "events": ["grant.issued"]}
    with pytest.raises(InvalidInput) as refused:
        endpoint_create(**{**good, **fields}, acting_user=cast["secadmin"])
    assert refused.value.field == field
    assert not WebhookEndpoint.objects.exists()


def test_plain_http_needs_the_setting(cast, settings):
    settings.JIT_WEBHOOK_ALLOW_HTTP = False
    with pytest.raises(InvalidInput) as refused:
        endpoint_create(name="lab", url="http://lab.example/h", events=["grant.issued"], acting_user=cast["secadmin"])
    assert refused.value.field == "url" and "https" in refused.value.detail
    _, ok = endpoint_create(name="s", url="https://s.example/h", events=["grant.issued"], acting_user=cast["secadmin"])
    assert ok.url == "https://s.example/h"


@pytest.mark.parametrize("who", ["requester", "auditor", "legal1a", "svc", "outsider"])
def test_only_security_admins_manage_endpoints(cast, endpoint, who):
    with pytest.raises(NotAllowed):
        endpoint_create(name="x", url="https://x.example/", events=["grant.issued"], acting_user=cast[who])
    with pytest.raises(NotAllowed):
        endpoint_secret_rotate(endpoint.endpoint, acting_user=cast[who])
    with pytest.raises(NotAllowed):
        endpoint_deactivate(endpoint.endpoint, acting_user=cast[who])


def test_creating_audits_and_seals_the_secret_in_the_webhook_key_ring(cast, endpoint, settings):
    record = endpoint.endpoint
    ring = KeyRing.objects.get(name=settings.JIT_WEBHOOK_KEYRING)
    stored = Secret.objects.get(pk=record.signing_secret_id)
    assert stored.keyring == ring and ring.security_group.standing.count() == 0
    [created] = events("webhook.created")
    assert created.actor == cast["secadmin"] and created.data["events"] == record.events
    assert created.data["url"] == record.url and endpoint.secret not in json.dumps(created.data)
    # A second endpoint uses the same ring.
    _, other = endpoint_create(name="b", url=record.url, events=["grant.issued"], acting_user=cast["secadmin"])
    assert Secret.objects.get(pk=other.signing_secret_id).keyring == ring


def test_rotating_the_secret_signs_from_then_on_with_the_new_one_only(cast, entitlement, endpoint, receiver):
    new_secret, record = endpoint_secret_rotate(endpoint.endpoint, acting_user=cast["secadmin"])
    assert new_secret != endpoint.secret and record.secret_rotated_at is not None
    assert events("webhook.secret_rotated")[0].data["value_version"] == 2

    submit(cast["requester"], entitlement)
    delivery_attempt(only_delivery("request.submitted").pk, 1)
    [got] = receiver.requests
    header = got.headers["X-Jitaccess-Signature"]
    assert signing.signature_valid(new_secret, got.body, header)
    assert not signing.signature_valid(endpoint.secret, got.body, header)


def test_updating_changes_only_what_is_given_and_audits_the_difference(cast, endpoint):
    record = endpoint_update(endpoint.endpoint, events=["grant.revoked", "grant.issued"], acting_user=cast["secadmin"])
    assert record.events == ["grant.issued", "grant.revoked"] and record.name == "siem"
    [updated] = events("webhook.updated")
    assert list(updated.data["changed"]) == ["events"]
    endpoint_update(record, name="siem", acting_user=cast["secadmin"])
    assert len(events("webhook.updated")) == 1  # nothing changed, nothing recorded


def test_deactivating_fails_pending_deliveries_and_stops_new_ones(
    cast, entitlement, endpoint, django_capture_on_commit_callbacks
):
    submit(cast["requester"], entitlement)
    delivery = only_delivery("request.submitted")
    endpoint_deactivate(endpoint.endpoint, acting_user=cast["secadmin"])
    endpoint_deactivate(endpoint.endpoint, acting_user=cast["secadmin"])

    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED and "deactivated" in delivery.last_error
    [deactivated] = events("webhook.deactivated")
    assert deactivated.data["pending_dropped"] == 1
    assert delivery_attempt(delivery.pk, 1) is None
    approval_services.request_withdraw(submit(cast["admin2"], entitlement), acting_user=cast["admin2"])
    assert WebhookDelivery.objects.count() == 1  # neither the submission nor the withdrawal was sent
    with pytest.raises(Conflict):
        endpoint_secret_rotate(endpoint.endpoint, acting_user=cast["secadmin"])
    with pytest.raises(Conflict):
        delivery_redeliver(delivery, acting_user=cast["secadmin"])


def test_a_failed_delivery_can_be_sent_again_and_nothing_else_can(cast, entitlement, endpoint, receiver, settings):
    settings.JIT_WEBHOOK_MAX_ATTEMPTS = 1
    receiver.answers = [503, 200]
    submit(cast["requester"], entitlement)
    delivery = only_delivery("request.submitted")
    with pytest.raises(Conflict):
        delivery_redeliver(delivery, acting_user=cast["secadmin"])  # pending
    assert delivery_attempt(delivery.pk, 1) == DeliveryStatus.FAILED

    again = delivery_redeliver(delivery, acting_user=cast["secadmin"])
    assert again.status == DeliveryStatus.PENDING and again.attempts == 0
    assert events("webhook.redelivered")[0].data["delivery"] == str(delivery.uuid)
    assert delivery_attempt(delivery.pk, 1) == DeliveryStatus.DELIVERED
    assert [r.headers["X-Jitaccess-Delivery"] for r in receiver.requests] == [str(delivery.uuid)] * 2


# --- invariant 11 -------------------------------------------------------------------------------


@pytest.mark.postgres
def test_the_signing_secret_is_never_in_clear_in_the_database_or_the_logs(
    cast, entitlement, receiver, caplog, django_capture_on_commit_callbacks
):
    caplog.set_level(logging.DEBUG)
    receiver.answers = [500, 200]
    secret, record = endpoint_create(
        name="siem", url=receiver.url, events=["request.submitted"], acting_user=cast["secadmin"]
    )
    with django_capture_on_commit_callbacks(execute=True):
        submit(cast["requester"], entitlement)  # its task goes to the real broker
    delivery = only_delivery("request.submitted")
    delivery_attempt(delivery.pk, 1)
    rotated, _ = endpoint_secret_rotate(record, acting_user=cast["secadmin"])
    delivery_attempt(delivery.pk, 2)

    stored, logged, queued = database_dump(), caplog.text, redis_dump()
    assert "webhook.created" in stored and "HTTP 500" in logged  # the dump and the log really cover it
    assert "send_delivery" in queued
    for clear in (secret, rotated, secret[6:], rotated[6:]):
        assert clear not in stored
        assert clear not in logged
        assert clear not in queued


def test_signing_survives_a_rotation_and_rewrap_of_the_webhook_key_ring(cast, entitlement, endpoint, receiver):
    """Invariant 10 for signing secrets: they are secrets of the ring, so rotation loses none."""
    ring = endpoint.endpoint.signing_secret.keyring
    key_services.keyring_rotate(ring, acting_user=None)
    assert key_services.keyring_rewrap(ring).rewrapped == 1
    assert key_services.keyversions_archive_unreferenced(ring) == [1]
    kek_cache_clear()

    submit(cast["requester"], entitlement)
    assert delivery_attempt(only_delivery("request.submitted").pk, 1) == DeliveryStatus.DELIVERED
    [got] = receiver.requests
    assert signing.signature_valid(endpoint.secret, got.body, got.headers["X-Jitaccess-Signature"])


# --- concurrency (PostgreSQL row locks) ---------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_sweeps_at_once_hand_each_due_delivery_over_once_and_one_attempt_is_made_once(
    cast, entitlement, endpoint, receiver
):
    for requester in ("requester", "admin2") * 3:
        submit(cast[requester], entitlement)
    WebhookDelivery.objects.update(next_attempt_at=clock.now() - timedelta(seconds=1))
    handed: list[list[int]] = []
    with mock.patch.object(send_delivery, "apply_async", side_effect=lambda args: handed.append(args)):
        counts = run_concurrently([dispatch.webhook_sweep, dispatch.webhook_sweep])
    assert sum(counts) == 6
    assert sorted(handed) == sorted([pk, 1] for pk in WebhookDelivery.objects.values_list("pk", flat=True))

    first = WebhookDelivery.objects.order_by("pk").first()
    outcomes = run_concurrently([lambda: delivery_attempt(first.pk, 1)] * 4)
    assert sorted(outcomes, key=str) == [None, None, None, DeliveryStatus.DELIVERED]
    assert len(receiver.requests) == 1


def test_a_signing_secret_is_never_revealed_through_the_secrets_api(cast, endpoint, api):
    # Even a standing service member of the ring's group is refused, and the attempt is audited.
    group = endpoint.endpoint.signing_secret.keyring.security_group
    approval_services.standing_member_add(group, user=cast["svc"], acting_user=None)
    api.force_authenticate(user=cast["svc"])

    response = api.post(
        f"/api/v1/secrets/{endpoint.endpoint.signing_secret_id}/reveal/", {"reason": "curious"}, format="json"
    )

    assert response.status_code == 403 and response.json()["code"] == "server_only"
    assert endpoint.secret not in response.content.decode()
    [refused] = events("secret.reveal_denied")
    assert refused.data["refusal"] == "server_only" and refused.actor == cast["svc"]


def test_the_secrets_api_neither_changes_nor_adds_secrets_in_the_webhook_key_ring(cast, endpoint, api):
    api.force_authenticate(user=cast["secadmin"])
    stored = endpoint.endpoint.signing_secret
    changed = api.patch(f"/api/v1/secrets/{stored.pk}/", {"value": "whsec_chosen"}, format="json")
    added = api.post(
        "/api/v1/secrets/",
        {"name": "extra", "keyring": stored.keyring.name, "kind": "generic", "metadata": {}, "value": "v"},
        format="json",
    )
    assert changed.status_code == 403 and added.status_code == 403
    assert changed.json()["code"] == added.json()["code"] == "server_only"
    assert Secret.objects.get(pk=stored.pk).value_version == 1
    assert Secret.objects.filter(keyring=stored.keyring).count() == 1
