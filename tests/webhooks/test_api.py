"""The webhooks API: security admins only (403 for everyone else, 401 anonymous), a recent
re-authentication for changes made with a browser session, 400s naming the field, the secret
in the creating answer only, and the deliveries with a status filter and resending."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from jitaccess.audit.models import AuditEvent
from jitaccess.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from jitaccess.webhooks.services import delivery_attempt
from tests.accounts.conftest import signed_in
from tests.conftest import submit

API = "/api/v1/webhooks/"
DELIVERIES = "/api/v1/webhooks/deliveries/"
GOOD = {"name": "siem", "url": "https://siem.example.com/hook", "events": ["grant.issued", "grant.revoked"]}


def as_user(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user=user)
    return client


def test_creating_answers_the_secret_once_and_lists_never_show_it(cast):
    admin = as_user(cast["secadmin"])
    created = admin.post(API, GOOD, format="json")

    assert created.status_code == 201 and created["Cache-Control"] == "no-store"
    body = created.json()
    secret = body.pop("signing_secret")
    assert secret.startswith("whsec_")
    assert body["name"] == "siem" and body["events"] == ["grant.issued", "grant.revoked"] and body["is_active"]
    assert body["created_by"] == "secadmin" and body["failed_deliveries"] == 0
    listed, one = admin.get(API), admin.get(f"{API}{body['id']}/")
    assert listed.status_code == 200 and one.status_code == 200
    assert listed.json()["results"] == [one.json()] == [body]
    assert secret not in listed.content.decode() + one.content.decode()
    assert AuditEvent.objects.filter(action="webhook.created", target_id=str(body["id"])).count() == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"url": "ftp://siem.example.com/"}, "url"),
        ({"url": "https://ops:hunter2@siem.example.com/"}, "url"),
        ({"url": 7}, "url"),
        ({"events": []}, "events"),
        ({"events": ["secret.revealed"]}, "events"),
        ({"events": "grant.issued"}, "events"),
        ({"name": ""}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"is_active": False}, "is_active"),
        ({"signing_secret": "whsec_mine"}, "signing_secret"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(cast, change, field):
    response = as_user(cast["secadmin"]).post(API, {**GOOD, **change}, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["errors"]
    assert not WebhookEndpoint.objects.exists()


def test_a_missing_field_is_a_400_naming_it(cast):
    response = as_user(cast["secadmin"]).post(API, {"name": "siem"}, format="json")
    assert response.status_code == 400
    assert {"url", "events"} <= set(response.json()["errors"])


@pytest.mark.parametrize("who", ["requester", "auditor", "legal1a", "outsider"])
def test_everyone_but_security_admins_gets_403(cast, who):
    client = as_user(cast[who])
    assert client.get(API).status_code == 403
    assert client.post(API, GOOD, format="json").status_code == 403
    assert client.get(DELIVERIES).status_code == 403
    assert not WebhookEndpoint.objects.exists()


def test_service_tokens_and_anonymous_callers_are_refused(cast):
    assert APIClient().get(API).status_code == 401
    assert APIClient().post(API, GOOD, format="json").status_code == 401


def test_changes_with_a_browser_session_need_a_recent_reauthentication(cast):
    stale = signed_in(cast["secadmin"], reauthenticated=False)
    refused = stale.post(API, GOOD, content_type="application/json")
    assert refused.status_code == 403 and "re-authenticate" in refused.json()["detail"]
    assert not WebhookEndpoint.objects.exists()
    assert stale.get(API).status_code == 200  # reading needs no fresh proof

    fresh = signed_in(cast["secadmin"])
    created = fresh.post(API, GOOD, content_type="application/json")
    assert created.status_code == 201
    pk = created.json()["id"]
    for path in (f"{API}{pk}/rotate-secret/", f"{API}{pk}/deactivate/"):
        assert stale.post(path).status_code == 403
    assert stale.patch(f"{API}{pk}/", {"name": "x"}, content_type="application/json").status_code == 403


def test_update_rotate_and_deactivate(cast):
    admin = as_user(cast["secadmin"])
    created = admin.post(API, GOOD, format="json").json()
    pk = created["id"]

    updated = admin.patch(f"{API}{pk}/", {"events": ["request.submitted"]}, format="json")
    assert updated.status_code == 200 and updated.json()["events"] == ["request.submitted"]
    assert updated.json()["url"] == GOOD["url"]
    assert admin.patch(f"{API}{pk}/", {"url": "gopher://x"}, format="json").status_code == 400
    assert admin.put(f"{API}{pk}/", GOOD, format="json").status_code == 405
    assert admin.delete(f"{API}{pk}/").status_code == 405

    rotated = admin.post(f"{API}{pk}/rotate-secret/")
    assert rotated.status_code == 200 and rotated["Cache-Control"] == "no-store"
    assert rotated.json()["signing_secret"] not in (created["signing_secret"], "")

    off = admin.post(f"{API}{pk}/deactivate/")
    assert off.status_code == 200 and off.json()["is_active"] is False and off.json()["deactivated_at"]
    assert admin.post(f"{API}{pk}/deactivate/").status_code == 200
    assert admin.post(f"{API}{pk}/rotate-secret/").status_code == 409
    assert admin.patch(f"{API}{pk}/", {"name": "again"}, format="json").status_code == 409
    assert admin.get(f"{API}{pk + 100}/").status_code == 404
    actions = list(AuditEvent.objects.filter(target_type="webhook").values_list("action", flat=True).order_by("seq"))
    assert actions == ["webhook.created", "webhook.updated", "webhook.secret_rotated", "webhook.deactivated"]


def test_deliveries_are_listed_filtered_by_status_and_a_failed_one_sent_again(
    cast, entitlement, endpoint, receiver, settings
):
    settings.JIT_WEBHOOK_MAX_ATTEMPTS = 1
    receiver.answers = [500, 200]
    submit(cast["requester"], entitlement)
    first = WebhookDelivery.objects.get()
    delivery_attempt(first.pk, 1)
    submit(cast["admin2"], entitlement)
    second = WebhookDelivery.objects.exclude(pk=first.pk).get()
    delivery_attempt(second.pk, 1)

    admin = as_user(cast["secadmin"])
    everything = admin.get(DELIVERIES).json()["results"]
    assert [d["id"] for d in everything] == [second.pk, first.pk]
    failed = admin.get(DELIVERIES, {"status": "failed"}).json()["results"]
    assert [(d["id"], d["status"], d["last_status_code"]) for d in failed] == [(first.pk, "failed", 500)]
    assert failed[0]["delivery_id"] == str(first.uuid) and failed[0]["event"] == "request.submitted"
    assert admin.get(DELIVERIES, {"endpoint": endpoint.endpoint.pk + 1}).json()["results"] == []
    bad = admin.get(DELIVERIES, {"status": "lost"})
    assert bad.status_code == 400 and "status" in bad.content.decode()

    assert admin.post(f"{DELIVERIES}{second.pk}/redeliver/").status_code == 409  # delivered
    again = admin.post(f"{DELIVERIES}{first.pk}/redeliver/")
    assert again.status_code == 202 and again.json()["status"] == DeliveryStatus.PENDING
    assert as_user(cast["auditor"]).post(f"{DELIVERIES}{first.pk}/redeliver/").status_code == 403


def test_the_schema_documents_the_webhook_endpoints(cast):
    schema = APIClient().get("/api/v1/schema/", {"format": "json"}).json()
    paths = schema["paths"]
    for path in (
        "/api/v1/webhooks/",
        "/api/v1/webhooks/{id}/",
        "/api/v1/webhooks/{id}/rotate-secret/",
        "/api/v1/webhooks/{id}/deactivate/",
        "/api/v1/webhooks/deliveries/",
        "/api/v1/webhooks/deliveries/{id}/redeliver/",
    ):
        assert path in paths, path
    assert "WebhookEndpointCreated" in str(paths["/api/v1/webhooks/"]["post"]["responses"]["201"])
