"""Personal API tokens through the public surface: /api/v1/auth/token/ and Bearer authentication."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.utils.dateparse import parse_datetime
from rest_framework.test import APIClient

from jitaccess import clock
from jitaccess.accounts.models import ApiToken
from jitaccess.audit.models import AuditEvent
from jitaccess.tokens import token_digest

TOKEN_URL = "/api/v1/auth/token/"
CURRENT_URL = "/api/v1/auth/token/current/"
PROBE_URL = "/api/v1/requests/"


def sign_in(username: str, password: str) -> Any:
    return APIClient().post(TOKEN_URL, {"username": username, "password": password}, format="json")


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def token_for(username: str) -> str:
    response = sign_in(username, "pw-" + username)
    assert response.status_code == 201, response.content
    return response.json()["token"]


def test_it_issues_a_token_that_works_as_bearer(cast):
    before = clock.now()
    response = sign_in("requester", "pw-requester")

    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"token", "expires_at"}
    expires_at = parse_datetime(body["expires_at"])
    lifetime = timedelta(seconds=settings.JIT_API_TOKEN_SECONDS)
    assert before + lifetime <= expires_at <= clock.now() + lifetime

    record = ApiToken.objects.get()
    assert record.user == cast["requester"]
    assert record.token_hash == token_digest(body["token"])
    assert record.expires_at == expires_at
    assert AuditEvent.objects.filter(action="auth.token_issued", actor=cast["requester"]).count() == 1

    probe = bearer(body["token"]).get(PROBE_URL)
    assert probe.status_code == 200
    record.refresh_from_db()
    assert record.last_used_at is not None


def test_it_records_last_use_at_most_once_a_minute(cast):
    client = bearer(token_for("requester"))
    client.get(PROBE_URL)
    first = ApiToken.objects.get().last_used_at

    client.get(PROBE_URL)
    assert ApiToken.objects.get().last_used_at == first  # no write on every request
    ApiToken.objects.update(last_used_at=first - timedelta(seconds=61))
    client.get(PROBE_URL)
    assert ApiToken.objects.get().last_used_at > first


def test_it_stores_the_token_only_hashed(cast):
    token = token_for("requester")
    token_rows = [str(row) for row in ApiToken.objects.values()]
    audit_rows = [str(row) for row in AuditEvent.objects.values()]
    assert token_rows and audit_rows
    assert not [row for row in token_rows + audit_rows if token in row]
    # The stored prefix is short enough to tell tokens apart, far too short to use.
    assert len(ApiToken.objects.get().prefix) < len(token) // 2


@pytest.mark.parametrize(
    "username, password",
    [("requester", "wrong-password"), ("nobody-by-that-name", "pw-requester")],
    ids=["wrong password", "unknown user"],
)
def test_it_refuses_bad_credentials_with_one_answer_and_audits_them(cast, username, password):
    response = sign_in(username, password)
    reference = sign_in("admin2", "another-wrong-password")

    assert response.status_code == 401
    assert response.json() == reference.json()
    assert response.json()["detail"]
    assert "WWW-Authenticate" in response
    assert not ApiToken.objects.exists()
    failed = AuditEvent.objects.filter(action="auth.login_failed").exclude(data__known_user=True, target_id="admin2")
    assert failed.count() == 1
    event = failed.get()
    assert event.outcome == "denied"
    assert event.data["reason"] == "password"
    if username == "requester":
        assert event.target_id == "requester"
    else:
        # A name that is no account's may be a mistyped password: only its keyed hash is kept.
        assert event.target_id.startswith("hmac:")
        assert username not in str(event.data) and username not in event.target_id
        assert sign_in(username, password).status_code == 401
        assert AuditEvent.objects.filter(action="auth.login_failed", target_id=event.target_id).count() == 2


def test_it_refuses_an_inactive_user(cast):
    cast["requester"].is_active = False
    cast["requester"].save()
    assert sign_in("requester", "pw-requester").status_code == 401
    assert not ApiToken.objects.exists()


@pytest.mark.parametrize(
    "body, missing",
    [
        ({"username": "requester"}, {"password"}),
        ({"password": "pw-requester"}, {"username"}),
        ({}, {"username", "password"}),
    ],
    ids=["no password", "no username", "empty body"],
)
def test_it_names_the_missing_sign_in_fields(cast, body, missing):
    response = APIClient().post(TOKEN_URL, body, format="json")
    assert response.status_code == 400
    assert set(response.json()["errors"]) == missing
    assert not ApiToken.objects.exists()


def test_it_refuses_unknown_sign_in_fields(cast):
    response = APIClient().post(
        TOKEN_URL, {"username": "requester", "password": "pw-requester", "scope": "admin"}, format="json"
    )
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"scope"}
    assert not ApiToken.objects.exists()


def test_it_refuses_an_expired_token(cast):
    token = token_for("requester")
    assert bearer(token).get(PROBE_URL).status_code == 200
    ApiToken.objects.update(expires_at=clock.now() - timedelta(seconds=1))
    response = bearer(token).get(PROBE_URL)
    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"


def test_it_refuses_the_token_of_a_deactivated_user(cast):
    token = token_for("requester")
    cast["requester"].is_active = False
    cast["requester"].save()
    assert bearer(token).get(PROBE_URL).status_code == 401


def test_it_refuses_an_unknown_token(cast):
    assert bearer("jit_not-a-real-token").get(PROBE_URL).status_code == 401
    assert bearer("jitg_not-a-real-credential").get(PROBE_URL).status_code == 401


def test_it_revokes_the_current_token(cast):
    token = token_for("requester")
    other = token_for("requester")

    response = bearer(token).delete(CURRENT_URL)

    assert response.status_code == 204
    revoked = ApiToken.objects.get(token_hash=token_digest(token))
    assert revoked.revoked_at is not None
    assert AuditEvent.objects.filter(action="auth.token_revoked", target_id=str(revoked.pk)).count() == 1
    assert bearer(token).get(PROBE_URL).status_code == 401
    assert bearer(token).delete(CURRENT_URL).status_code == 401
    # Only the token the call was made with.
    assert bearer(other).get(PROBE_URL).status_code == 200


def test_it_needs_a_token_to_revoke_the_current_one(cast):
    assert APIClient().delete(CURRENT_URL).status_code == 401


def test_revoking_the_current_token_without_one_is_a_documented_400(cast):
    client = APIClient()
    client.force_authenticate(user=cast["requester"])  # as a browser session is: no token

    response = client.delete(CURRENT_URL)

    assert response.status_code == 400
    assert "authorization" in response.json()["errors"]
    schema = APIClient().get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    assert "400" in schema["paths"][CURRENT_URL]["delete"]["responses"]


# --- second factor ------------------------------------------------------------------------------


def totp_now(device) -> str:
    from django_otp.oath import TOTP

    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    return f"{totp.token():0{device.digits}d}"


def test_it_requires_the_otp_of_a_user_with_a_totp_device(db, api):
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from jitaccess.audit.models import AuditEvent
    from tests.conftest import make_user

    user = make_user("with-otp")
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    body = {"username": "with-otp", "password": "pw-with-otp"}
    missing = api.post("/api/v1/auth/token/", body, format="json")
    bad_password = api.post("/api/v1/auth/token/", {**body, "password": "wrong"}, format="json")
    # A missing code answers exactly like a wrong password: nothing confirms the password.
    assert missing.status_code == 401 and missing.json() == bad_password.json()
    good = api.post("/api/v1/auth/token/", {**body, "otp": totp_now(device)}, format="json")
    assert good.status_code == 201, good.json()
    replay = api.post("/api/v1/auth/token/", {**body, "otp": totp_now(device)}, format="json")
    assert replay.status_code == 401
    assert AuditEvent.objects.filter(action="auth.login_failed").count() == 3


# --- throttling ---------------------------------------------------------------------------------


@pytest.fixture
def tight_throttles(monkeypatch):
    from django.core.cache import cache
    from rest_framework.throttling import ScopedRateThrottle

    from jitaccess.accounts.api.throttling import UsernameRateThrottle

    cache.clear()
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"auth-token": "3/min"})
    monkeypatch.setattr(UsernameRateThrottle, "THROTTLE_RATES", {"auth-token-user": "2/min"})
    yield
    cache.clear()


def test_the_per_name_count_has_a_plain_cache_key_whatever_name_is_sent():
    from types import SimpleNamespace

    from jitaccess.accounts.api.throttling import UsernameRateThrottle

    def key(username):
        return UsernameRateThrottle().get_cache_key(SimpleNamespace(data={"username": username}), None)

    sent = " Vïctim\r\n\x00" * 40
    assert re.fullmatch(r"throttle_auth-token-user_[0-9a-f]{64}", key(sent))
    # Still one count per name, however it is spelt in case or padded.
    assert key(sent.upper()) == key(sent) and key("victim") == key(" VICTIM ") != key("victim2")


def test_a_spoofed_forwarded_for_does_not_escape_the_address_throttle(db, api, tight_throttles):
    codes = [
        api.post(
            "/api/v1/auth/token/",
            {"username": f"nobody{i}", "password": "x"},
            format="json",
            HTTP_X_FORWARDED_FOR=f"203.0.113.{i}",
        ).status_code
        for i in range(4)
    ]
    assert codes == [401, 401, 401, 429]


def test_guessing_one_account_is_throttled_whatever_the_address(db, api, tight_throttles):
    codes = [
        api.post(
            "/api/v1/auth/token/",
            {"username": "victim", "password": f"guess{i}"},
            format="json",
            REMOTE_ADDR=f"198.51.100.{i}",
        ).status_code
        for i in range(3)
    ]
    assert codes == [401, 401, 429]
