"""While a grant is active, every HTTP request its holder makes is recorded under the grant —
and when that record cannot be written, the response (a revealed value included) is withheld."""

from __future__ import annotations

from datetime import timedelta

import pytest
from rest_framework.test import APIClient

from approvals.models import Grant
from jitaccess import clock
from jitaccess.audit.models import AuditEvent
from keys.services import keyring_create
from tests.conftest import as_user
from tests.keys.conftest import make_secret

VALUE = "activity-marker-value-41d7"


def http_events(**filters):
    return list(AuditEvent.objects.filter(action="grant.http_request", **filters).order_by("seq"))


@pytest.fixture
def secret(cast, security_group):
    keyring = keyring_create(name="ring-activity", security_group=security_group, acting_user=None)
    return make_secret(keyring, cast["secadmin"], value=VALUE)


def test_each_request_of_a_grantee_is_recorded_with_the_grant(cast, granted, api):
    grant = granted.grant
    as_user(api, cast["requester"])
    api.get("/api/v1/grants/?state=active&note=do-not-record-me")
    api.get(f"/api/v1/requests/{granted.pk}/")
    api.post(f"/api/v1/requests/{granted.pk}/withdraw/")  # refused: recorded with its status

    events = http_events(grant_id=grant.pk)
    assert [(e.data["method"], e.data["path"], e.data["status"], e.outcome) for e in events] == [
        ("GET", "/api/v1/grants/", 200, "success"),
        ("GET", f"/api/v1/requests/{granted.pk}/", 200, "success"),
        ("POST", f"/api/v1/requests/{granted.pk}/withdraw/", 409, "failed"),
    ]
    assert all(e.actor_id == cast["requester"].pk for e in events)
    assert "do-not-record-me" not in str([(e.data, e.target_id) for e in events])


def test_requests_with_the_grant_credential_are_recorded_too(cast, granted, secret):
    grant = granted.grant
    minted = as_user(APIClient(), cast["requester"]).post(f"/api/v1/grants/{grant.pk}/credential/").json()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {minted['credential']}")
    response = client.post(f"/api/v1/secrets/{secret.pk}/reveal/", {"reason": "INC-9"}, format="json")
    assert response.status_code == 200
    [event] = http_events(target_id=f"POST /api/v1/secrets/{secret.pk}/reveal/")
    assert (event.grant_id, event.actor_id, event.data["status"]) == (grant.pk, cast["requester"].pk, 200)


def test_people_without_an_active_grant_and_service_accounts_are_not_recorded(cast, granted, secret, api):
    as_user(api, cast["admin2"]).get("/api/v1/requests/")
    as_user(APIClient(), cast["svc"]).post(f"/api/v1/secrets/{secret.pk}/reveal/", {"reason": "job"}, format="json")
    assert http_events() == []

    past = clock.now() - timedelta(seconds=1)
    Grant.objects.filter(pk=granted.grant.pk).update(starts_at=past - timedelta(hours=1), expires_at=past)
    as_user(APIClient(), cast["requester"]).get("/api/v1/grants/")
    assert http_events() == []


def test_a_reveal_whose_activity_record_fails_returns_no_value(cast, granted, secret, monkeypatch):
    def unavailable(*args, **kwargs):
        raise RuntimeError("audit store unavailable")

    monkeypatch.setattr("approvals.middleware.audit_record", unavailable)
    response = as_user(APIClient(), cast["requester"]).post(
        f"/api/v1/secrets/{secret.pk}/reveal/", {"reason": "INC-10"}, format="json"
    )
    assert response.status_code == 503
    assert response.json()["code"] == "audit_unavailable"
    assert VALUE not in response.content.decode()
    # The reveal itself was recorded before the value was prepared; only the response was withheld.
    assert AuditEvent.objects.filter(action="secret.revealed", grant_id=granted.grant.pk).count() == 1
