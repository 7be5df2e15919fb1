"""Service-account API tokens: created by security admins (API and page), scoped, expiring,
revocable, hashed at rest, listed with their last use, and audited."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from jitaccess import clock
from jitaccess.accounts.models import ServiceToken
from jitaccess.accounts.reauth import REAUTH_SESSION_KEY
from jitaccess.accounts.services import service_token_create
from jitaccess.tokens import token_digest
from keys import services as key_services
from tests.accounts.conftest import events, signed_in
from tests.keys.conftest import make_secret
from tests.web.conftest import by_id, table_rows

API = "/api/v1/service-tokens/"
PAGE = "/security/service-tokens/"
NEW_PAGE = "/security/service-tokens/new/"


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def as_user(user: Any) -> APIClient:
    """A personal token's client (force_authenticate: no browser session, so no re-authentication)."""
    client = APIClient()
    client.force_authenticate(user=user)
    return client


def mint(cast: dict[str, Any], *scopes: str, days: int = 30) -> tuple[str, ServiceToken]:
    return service_token_create(
        account=cast["svc"], name="backup job", scopes=list(scopes), days=days, acting_user=cast["secadmin"]
    )


@pytest.fixture
def secret(cast: dict[str, Any], entitlement: Any) -> Any:
    keyring = key_services.keyring_create(name="ring-svc", security_group=entitlement.security_group, acting_user=None)
    return make_secret(keyring, cast["secadmin"])


# --- creating, through the API -------------------------------------------------------------------


def test_it_creates_a_token_shown_once_and_stored_only_as_its_hash(cast):
    before = clock.now()
    response = as_user(cast["secadmin"]).post(
        API, {"account": "svc", "name": "backup job", "scopes": ["secrets:reveal", "secrets:read"], "days": 7}
    )

    assert response.status_code == 201, response.content
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    token = body["token"]
    assert token.startswith("jits_") and len(token) > 40
    assert body["account"] == "svc" and body["created_by"] == "secadmin"
    assert body["scopes"] == ["secrets:read", "secrets:reveal"]
    assert body["state"] == "active" and body["last_used_at"] is None and body["revoked_at"] is None
    record = ServiceToken.objects.get()
    assert record.token_hash == token_digest(token)
    assert token not in {record.token_hash, record.prefix, record.name} and token.startswith(record.prefix)
    assert before + timedelta(days=7) <= record.expires_at <= clock.now() + timedelta(days=7)
    # Listed afterwards without the token.
    listed = as_user(cast["secadmin"]).get(API).json()["results"]
    assert [row["id"] for row in listed] == [record.pk] and "token" not in listed[0]
    assert token not in str(as_user(cast["secadmin"]).get(f"{API}{record.pk}/").content)
    [event] = events("auth.service_token_created")
    assert event.actor == cast["secadmin"] and event.target_id == str(record.pk)
    assert event.data["scopes"] == ["secrets:read", "secrets:reveal"] and token not in str(event.data)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"account": "svc", "name": "job", "scopes": ["secrets:read"], "days": 91}, "days"),
        ({"account": "svc", "name": "job", "scopes": ["secrets:read"], "days": 0}, "days"),
        ({"account": "svc", "name": "job", "scopes": ["secrets:read"]}, "days"),
        ({"account": "svc", "name": "job", "scopes": [], "days": 7}, "scopes"),
        ({"account": "svc", "name": "job", "scopes": ["admin:everything"], "days": 7}, "scopes"),
        ({"account": "requester", "name": "job", "scopes": ["secrets:read"], "days": 7}, "account"),
        ({"account": "nobody", "name": "job", "scopes": ["secrets:read"], "days": 7}, "account"),
        ({"account": "svc", "name": "   ", "scopes": ["secrets:read"], "days": 7}, "name"),
    ],
)
def test_it_refuses_a_token_without_a_bounded_expiry_a_known_scope_or_a_service_account(cast, body, field):
    response = as_user(cast["secadmin"]).post(API, body, format="json")

    assert response.status_code == 400, response.content
    assert field in response.json()["errors"]
    assert not ServiceToken.objects.exists()


def test_the_lifetime_cap_follows_the_setting(cast, settings):
    settings.JIT_SERVICE_TOKEN_MAX_DAYS = 10
    body = {"account": "svc", "name": "job", "scopes": ["secrets:read"]}
    refused = as_user(cast["secadmin"]).post(API, {**body, "days": 11}, format="json")
    assert refused.status_code == 400 and "10 days" in refused.json()["errors"]["days"][0]
    assert as_user(cast["secadmin"]).post(API, {**body, "days": 10}, format="json").status_code == 201


@pytest.mark.parametrize("who", ["requester", "auditor", "outsider", "svc"])
def test_only_security_admins_manage_tokens(cast, who):
    _, record = mint(cast, "secrets:read")
    client = as_user(cast[who])
    body = {"account": "svc", "name": "job", "scopes": ["secrets:read"], "days": 7}

    assert client.get(API).status_code == 403
    assert client.post(API, body, format="json").status_code == 403
    assert client.post(f"{API}{record.pk}/revoke/").status_code == 403
    assert ServiceToken.objects.count() == 1 and ServiceToken.objects.get().revoked_at is None


def test_anonymous_callers_get_401(cast):
    assert APIClient().get(API).status_code == 401


def test_creating_with_a_browser_session_needs_a_recent_reauthentication(cast):
    body = {"account": "svc", "name": "job", "scopes": ["secrets:read"], "days": 7}
    stale = signed_in(cast["secadmin"], reauthenticated=False)
    refused = stale.post(API, body, content_type="application/json")
    assert refused.status_code == 403 and "re-authenticate" in refused.json()["detail"]
    assert not ServiceToken.objects.exists()

    fresh = signed_in(cast["secadmin"])
    assert fresh.post(API, body, content_type="application/json").status_code == 201


# --- authenticating with one ---------------------------------------------------------------------


def test_a_token_acts_as_its_service_account_within_its_scopes(cast, secret):
    token, record = mint(cast, "secrets:read", "secrets:reveal")
    client = bearer(token)

    listed = client.get("/api/v1/secrets/")
    assert listed.status_code == 200 and [s["id"] for s in listed.json()["results"]] == [secret.pk]
    revealed = client.post(f"/api/v1/secrets/{secret.pk}/reveal/", {"reason": "nightly backup"}, format="json")
    assert revealed.status_code == 200 and revealed.json()["value"] == "s3cret-value"
    [event] = events("secret.revealed")
    assert event.actor == cast["svc"] and event.data["via"] == "standing"
    record.refresh_from_db()
    assert record.last_used_at is not None
    shown = as_user(cast["secadmin"]).get(f"{API}{record.pk}/").json()
    assert shown["last_used_at"] is not None


def test_a_token_without_the_scope_is_refused_with_a_403_naming_it(cast, secret):
    token, _ = mint(cast, "secrets:read")
    client = bearer(token)

    refused = client.post(f"/api/v1/secrets/{secret.pk}/reveal/", {"reason": "x"}, format="json")
    assert refused.status_code == 403
    assert refused.json()["detail"] == "This service-account token lacks the scope secrets:reveal."
    assert not events("secret.revealed")
    write = client.post(
        "/api/v1/secrets/",
        {"name": "n", "keyring": "ring-svc", "kind": "generic", "metadata": {}, "value": "v"},
        format="json",
    )
    assert write.status_code == 403 and "secrets:write" in write.json()["detail"]


def test_the_write_scope_creates_secrets(cast, secret):
    token, _ = mint(cast, "secrets:write")
    created = bearer(token).post(
        "/api/v1/secrets/",
        {"name": "from-automation", "keyring": "ring-svc", "kind": "generic", "metadata": {}, "value": "v"},
        format="json",
    )
    assert created.status_code == 201, created.content


def test_requests_read_lists_requests_and_nothing_more(cast, pending):
    token, _ = mint(cast, "requests:read")
    client = bearer(token)
    assert client.get("/api/v1/requests/").status_code == 200
    assert client.get("/api/v1/grants/").status_code == 200
    assert client.post(f"/api/v1/requests/{pending.pk}/approve/", {}, format="json").status_code == 403
    assert client.get("/api/v1/secrets/").status_code == 403


@pytest.mark.parametrize(
    "path", ["/api/v1/entitlements/", "/api/v1/keyrings/", API, "/api/v1/audit/events/", "/api/v1/auth/token/current/"]
)
def test_views_that_declare_no_scope_refuse_service_tokens(cast, path):
    token, _ = mint(cast, "secrets:read", "secrets:reveal", "secrets:write", "requests:read")
    response = bearer(token).get(path) if not path.endswith("current/") else bearer(token).delete(path)
    assert response.status_code == 403
    assert response.json()["detail"] == "Service-account tokens cannot be used here."


def test_unknown_expired_revoked_and_deactivated_tokens_get_the_same_401(cast, monkeypatch):
    expired, _ = mint(cast, "requests:read", days=1)
    revoked, revoked_record = mint(cast, "requests:read")
    as_user(cast["secadmin"]).post(f"{API}{revoked_record.pk}/revoke/")
    later = clock.now() + timedelta(days=1, seconds=1)
    monkeypatch.setattr(clock, "now", lambda: later)
    answers = [bearer(token).get("/api/v1/requests/") for token in (expired, revoked, "jits_" + "x" * 43, "jits_")]

    assert {a.status_code for a in answers} == {401}
    assert {a.json()["detail"] for a in answers} == {"Invalid or expired token."}
    assert all(a["WWW-Authenticate"] == 'Bearer realm="api"' for a in answers)


def test_a_token_of_an_account_no_longer_a_service_account_or_inactive_stops_working(cast):
    token, _ = mint(cast, "requests:read")
    assert bearer(token).get("/api/v1/requests/").status_code == 200
    svc = cast["svc"]
    svc.is_active = False
    svc.save()
    assert bearer(token).get("/api/v1/requests/").status_code == 401
    svc.is_active, svc.is_service_account = True, False
    svc.save()
    assert bearer(token).get("/api/v1/requests/").status_code == 401


def test_revoking_ends_the_token_at_once_and_twice_is_one_event(cast):
    token, record = mint(cast, "requests:read")
    admin = as_user(cast["secadmin"])

    first = admin.post(f"{API}{record.pk}/revoke/")
    assert first.status_code == 200 and first.json()["state"] == "revoked"
    assert first.json()["revoked_by"] == "secadmin"
    assert admin.post(f"{API}{record.pk}/revoke/").status_code == 200
    assert bearer(token).get("/api/v1/requests/").status_code == 401
    assert len(events("auth.service_token_revoked")) == 1
    assert admin.post(f"{API}{record.pk + 1000}/revoke/").status_code == 404


def test_the_schema_documents_the_service_token_endpoints(cast):
    schema = APIClient().get("/api/v1/schema/?format=json").json()
    assert {"/api/v1/service-tokens/", "/api/v1/service-tokens/{id}/revoke/"} <= set(schema["paths"])
    created = schema["paths"]["/api/v1/service-tokens/"]["post"]["responses"]["201"]
    assert "ServiceTokenCreated" in str(created)


# --- the security admins' pages ------------------------------------------------------------------


def test_the_page_lists_tokens_with_created_expires_last_used_and_revoked(cast):
    _, used = mint(cast, "secrets:read")
    ServiceToken.objects.filter(pk=used.pk).update(last_used_at=clock.now())
    _, ended = mint(cast, "requests:read")
    as_user(cast["secadmin"]).post(f"{API}{ended.pk}/revoke/")

    response = signed_in(cast["secadmin"]).get(PAGE)

    assert response.status_code == 200
    assert "no-cache" in response["Cache-Control"]
    rows = table_rows(response, "Service tokens")
    assert [row[0] for row in rows] == [f"{ended.prefix}…", f"{used.prefix}…"]
    assert rows[0][4] == "revoked" and rows[0][8].endswith("by secadmin") and rows[0][9] == "–"
    assert rows[1][4] == "active" and rows[1][7] != "never" and rows[1][9] == f"Revoke {used.prefix}…"


@pytest.mark.parametrize("who", ["requester", "auditor", "svc"])
def test_other_roles_get_the_403_page(cast, who):
    response = signed_in(cast[who]).get(PAGE)
    assert response.status_code == 403
    assert "security admins" in response.content.decode()


def test_anonymous_visitors_go_to_sign_in():
    response = Client().get(PAGE)
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_creating_on_the_page_asks_to_reauthenticate_then_shows_the_token_once(cast):
    client = signed_in(cast["secadmin"], reauthenticated=False)
    form = {"account": "svc", "name": "nightly backup", "scopes": ["secrets:reveal"], "days": "14"}

    detour = client.post(NEW_PAGE, form)
    assert detour.status_code == 302 and detour["Location"].startswith("/account/reauth/")
    assert not ServiceToken.objects.exists()
    # Back from re-authenticating, the form shows what was typed.
    session = client.session
    session[REAUTH_SESSION_KEY] = {"user": cast["secadmin"].pk, "at": time.time()}
    session.save()
    again = client.get(NEW_PAGE)
    assert by_id(again, "id_name").attrs["value"] == "nightly backup"

    created = client.post(NEW_PAGE, form)
    assert created.status_code == 200
    assert "no-store" in created["Cache-Control"] or "no-cache" in created["Cache-Control"]
    token = by_id(created, "service-token").attrs["value"]
    record = ServiceToken.objects.get()
    assert record.token_hash == token_digest(token) and record.scopes == ["secrets:reveal"]
    assert token not in client.get(PAGE).content.decode()


def test_an_invalid_form_is_shown_again_with_each_problem_beside_its_field(cast, settings):
    settings.JIT_SERVICE_TOKEN_MAX_DAYS = 30
    client = signed_in(cast["secadmin"])

    response = client.post(NEW_PAGE, {"account": "requester", "name": "", "days": "31"})

    assert response.status_code == 400
    for field in ("account", "name", "scopes", "days"):
        assert by_id(response, f"id_{field}_error"), field
    assert not ServiceToken.objects.exists()


def test_revoking_on_the_page_asks_to_reauthenticate_first(cast):
    token, record = mint(cast, "requests:read")
    url = f"/security/service-tokens/{record.pk}/revoke/"
    stale = signed_in(cast["secadmin"], reauthenticated=False)
    assert stale.get(url).status_code == 200
    detour = stale.post(url)
    assert detour.status_code == 302 and detour["Location"].startswith("/account/reauth/")
    assert bearer(token).get("/api/v1/requests/").status_code == 200

    done = signed_in(cast["secadmin"]).post(url)
    assert done.status_code == 302 and done["Location"] == PAGE
    assert bearer(token).get("/api/v1/requests/").status_code == 401
    assert signed_in(cast["secadmin"]).get(f"/security/service-tokens/{record.pk + 1000}/revoke/").status_code == 404
