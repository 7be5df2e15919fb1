"""Single sign-on through OpenID Connect, against a local provider the tests start (no internet):
sign-in, identity linking, the group map, refusals, the second factor and re-authentication."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from django.contrib.auth.models import Group
from django.core.exceptions import ImproperlyConfigured
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from approvals.models import Decision, SecurityGroup
from jitaccess.accounts.models import GroupSecondFactorPolicy, OIDCIdentity, User
from jitaccess.accounts.oidc_backend import OIDC_BACKEND
from jitaccess.checks import check_oidc_group_map, refuse_protected_group_map
from tests.accounts.conftest import code_for, events, wrong_code
from tests.accounts.oidc_provider import FakeProvider, _new_key, provider_enabled
from tests.conftest import make_user
from tests.test_settings import manage
from tests.web.conftest import elements

pytestmark = pytest.mark.django_db

CAROL = {"sub": "0f3c-carol", "preferred_username": "carol", "email": "carol@example.test", "groups": []}


@pytest.fixture
def idp(settings: Any) -> Any:
    yield from provider_enabled(settings)


def through_provider(client: Client, start: str) -> Any:
    """Follow the redirects across the provider by hand; the app's answer to its callback."""
    response = client.get(start)
    assert response.status_code == 302, response
    at_provider = requests.get(response["Location"], allow_redirects=False, timeout=5)
    assert at_provider.status_code == 302
    back = urlsplit(at_provider.headers["Location"])
    assert back.netloc == "testserver" and back.path == "/oidc/callback/"
    return client.get(f"{back.path}?{back.query}")


def sign_in(provider: FakeProvider, person: dict[str, Any], *, next_url: str = "/") -> tuple[Client, Any]:
    provider.person = person
    client = Client()
    return client, through_provider(client, f"/oidc/authenticate/?next={next_url}")


def signed_in_as(client: Client) -> str | None:
    user_id = client.session.get("_auth_user_id")
    return User.objects.get(pk=user_id).username if user_id else None


def refusals(action: str = "auth.login_failed") -> list[str]:
    return [event.data["reason"] for event in events(action)]


# --- off by default --------------------------------------------------------------------------------


def test_it_is_off_by_default_with_no_url_backend_or_button(settings):
    assert settings.JIT_OIDC_ENABLED is False
    assert OIDC_BACKEND not in settings.AUTHENTICATION_BACKENDS
    for path in ("/oidc/authenticate/", "/oidc/callback/?code=x&state=y", "/oidc/reauth/", "/oidc/code/"):
        assert Client().get(path).status_code == 404, path
    assert "Sign in with" not in Client().get("/login/").content.decode()


def test_the_sign_in_page_offers_the_provider_when_on(idp):
    page = Client().get("/login/?next=/access/")
    [link] = elements(page, "a", id="sign-in-sso")
    assert link.text.strip() == "Sign in with Test IdP"
    assert link.attrs["href"] == "/oidc/authenticate/?next=/access/"


# --- signing in ----------------------------------------------------------------------------------


def test_a_first_sign_in_creates_the_account_linked_by_sub(idp, settings):
    settings.JIT_OIDC_GROUP_MAP = [("idp-legal", "legal-l1")]
    client, response = sign_in(idp, {**CAROL, "groups": ["idp-legal", "idp-other"]}, next_url="/access/")

    assert response.status_code == 302 and response["Location"] == "/access/"
    assert signed_in_as(client) == "carol"
    carol = User.objects.get(username="carol")
    assert (carol.is_staff, carol.is_superuser, carol.is_service_account) == (False, False, False)
    assert not carol.has_usable_password() and carol.email == "carol@example.test"
    assert OIDCIdentity.objects.get(user=carol).subject == "0f3c-carol"
    assert sorted(carol.groups.values_list("name", flat=True)) == ["legal-l1"]
    assert client.get("/").status_code == 200
    [created] = events("auth.user_created")
    assert created.data == {"method": "oidc", "issuer": idp.issuer, "subject": "0f3c-carol"}
    [synced] = events("auth.groups_synced")
    assert synced.data == {"method": "oidc", "added": ["legal-l1"], "removed": []}
    [login] = events("auth.login")
    assert login.actor_name == "carol" and login.data == {"method": "oidc", "second_factor": None}
    # All in the callback's request: its address and correlation id, one chain.
    assert {(e.ip, e.correlation_id) for e in (created, synced, login)} == {("127.0.0.1", login.correlation_id)}
    assert login.correlation_id and created.seq < synced.seq < login.seq
    # The request carried a nonce and PKCE, and asked for this client.
    [asked] = idp.authorize_requests
    assert asked["client_id"] == "jitaccess-test" and asked["nonce"] and asked["code_challenge_method"] == "S256"


def test_an_address_the_provider_has_not_verified_is_not_kept(idp):
    sign_in(idp, {**CAROL, "email_verified": False})
    assert User.objects.get(username="carol").email == ""


def test_the_password_sign_in_is_recorded_with_its_method(cast):
    client = Client()
    client.post("/login/", {"username": "outsider", "password": "pw-outsider"})
    assert events("auth.login")[-1].data == {"method": "password"}


def test_the_mapped_groups_follow_the_claim_both_ways_and_others_stay(idp, settings):
    settings.JIT_OIDC_GROUP_MAP = [("idp-legal", "legal-l1"), ("idp-signoff", "legal-l2"), ("idp-dc", "legal-l2")]
    carol = make_user("carol", "legal-l1", "local-only")
    OIDCIdentity.objects.create(user=carol, issuer=idp.issuer, subject=CAROL["sub"])
    changes_before = len(events("config.changed"))  # the set-up above, made as in the admin

    sign_in(idp, {**CAROL, "groups": ["idp-signoff", "idp-dc"]})

    assert sorted(carol.groups.values_list("name", flat=True)) == ["legal-l2", "local-only"]
    [synced] = events("auth.groups_synced")
    assert synced.data == {"method": "oidc", "added": ["legal-l2"], "removed": ["legal-l1"]}
    # Nothing changed the second time: nothing to record.
    sign_in(idp, {**CAROL, "groups": ["idp-signoff"]})
    assert len(events("auth.groups_synced")) == 1
    # The sign-in writes its own events; the change log does not say it a second time.
    assert len(events("config.changed")) == changes_before
    # No groups claim at all: no mapped group.
    sign_in(idp, {k: v for k, v in CAROL.items() if k != "groups"})
    assert sorted(carol.groups.values_list("name", flat=True)) == ["local-only"]
    assert events("auth.groups_synced")[-1].data["removed"] == ["legal-l2"]


def test_an_existing_account_is_never_taken_over_by_name_or_email_unless_linking_is_on(idp, settings):
    carol = make_user("carol", email="carol@example.test")

    client, response = sign_in(idp, CAROL)

    assert response["Location"] == "/login/" and signed_in_as(client) is None
    assert not OIDCIdentity.objects.exists() and refusals() == ["not_linked"]
    assert events("auth.login_failed")[0].data["subject"] == CAROL["sub"]

    settings.JIT_OIDC_LINK_EXISTING = True
    client, _ = sign_in(idp, CAROL)
    assert signed_in_as(client) == "carol" and len(events("auth.identity_linked")) == 1
    carol.refresh_from_db()
    assert carol.check_password("pw-carol"), "a linked account keeps its password"


def test_linking_by_name_never_takes_over_a_staff_account(idp, settings):
    settings.JIT_OIDC_LINK_EXISTING = True
    make_user("carol", is_staff=True)
    client, _ = sign_in(idp, CAROL)
    assert signed_in_as(client) is None and refusals() == ["privileged_account"]
    assert not OIDCIdentity.objects.exists()


def test_a_service_account_never_signs_in_through_the_provider(idp, settings):
    settings.JIT_OIDC_LINK_EXISTING = True
    svc = make_user("svc-mail", is_service_account=True)
    client, _ = sign_in(idp, {**CAROL, "preferred_username": "svc-mail"})
    assert signed_in_as(client) is None and refusals() == ["service_account"]
    # Not even when someone linked it by hand.
    OIDCIdentity.objects.create(user=svc, issuer=idp.issuer, subject=CAROL["sub"])
    client, _ = sign_in(idp, CAROL)
    assert signed_in_as(client) is None and refusals() == ["service_account", "service_account"]


def test_without_account_creation_only_linked_identities_sign_in(idp, settings):
    settings.JIT_OIDC_CREATE_USERS = False
    client, _ = sign_in(idp, CAROL)
    assert signed_in_as(client) is None and refusals() == ["unknown_user"]
    assert not User.objects.filter(username="carol").exists()


# --- the group map may not reach a security group ----------------------------------------------------


def test_a_map_reaching_a_security_group_stops_start_up_and_every_sign_in(idp, settings):
    SecurityGroup.objects.create(name="dkm-exchange")
    settings.JIT_OIDC_GROUP_MAP = [("idp-legal", "legal-l1"), ("idp-ops", "dkm-exchange")]

    [error] = check_oidc_group_map(None)
    assert error.id == "jitaccess.E011" and error.msg.startswith("JIT_OIDC_GROUP_MAP maps to the security group")
    assert "dkm-exchange" in error.msg
    with pytest.raises(ImproperlyConfigured, match="JIT_OIDC_GROUP_MAP"):
        refuse_protected_group_map()

    client, _ = sign_in(idp, {**CAROL, "groups": ["idp-ops"]})
    assert signed_in_as(client) is None and refusals() == ["group_map_protected"]
    assert not User.objects.filter(username="carol").exists()
    assert not Group.objects.filter(name="dkm-exchange").exists()


def test_a_map_of_ordinary_groups_passes_the_check(idp, settings):
    SecurityGroup.objects.create(name="dkm-exchange")
    settings.JIT_OIDC_GROUP_MAP = [("idp-legal", "legal-l1")]
    assert check_oidc_group_map(None) == []


# --- refusals ------------------------------------------------------------------------------------


def test_an_unknown_or_replayed_state_is_refused(idp):
    client = Client()
    assert client.get("/oidc/callback/?code=abc&state=made-up")["Location"] == "/login/"
    idp.person = CAROL
    started = client.get("/oidc/authenticate/")
    back = requests.get(started["Location"], allow_redirects=False, timeout=5).headers["Location"]
    callback = "/oidc/callback/?" + urlsplit(back).query
    client.get(callback)
    assert signed_in_as(client) == "carol"
    client.post("/logout/")
    assert client.get(callback)["Location"] == "/login/" and signed_in_as(client) is None
    assert refusals() == ["state", "state"]


def test_a_state_from_another_browser_is_refused(idp):
    idp.person = CAROL
    started = Client().get("/oidc/authenticate/")
    back = requests.get(started["Location"], allow_redirects=False, timeout=5).headers["Location"]
    victim = Client()
    victim.get("/oidc/callback/?" + urlsplit(back).query)
    assert signed_in_as(victim) is None and refusals() == ["state"]


@pytest.mark.parametrize(
    ("misbehaviour", "value"),
    [
        ("nonce_override", "another-nonce"),
        ("sign_with", "other key"),
        ("audience", "another-client"),
        ("error", "access_denied"),
    ],
)
def test_a_token_the_app_cannot_trust_signs_nobody_in(idp, misbehaviour, value):
    setattr(idp, misbehaviour, _new_key() if value == "other key" else value)
    client, response = sign_in(idp, CAROL)
    assert response["Location"] == "/login/" and signed_in_as(client) is None
    assert not User.objects.filter(username="carol").exists()
    assert refusals() == ["provider_error" if misbehaviour == "error" else "id_token"]
    assert not events("auth.login")


def test_a_userinfo_answer_about_someone_else_is_refused(idp):
    idp.userinfo_sub = "sub-of-someone-else"
    client, _ = sign_in(idp, CAROL)
    assert signed_in_as(client) is None and refusals() == ["userinfo"]


def test_a_deactivated_account_does_not_sign_in(idp):
    carol = make_user("carol", is_active=False)
    OIDCIdentity.objects.create(user=carol, issuer=idp.issuer, subject=CAROL["sub"])
    client, _ = sign_in(idp, CAROL)
    assert signed_in_as(client) is None and refusals() == ["inactive"]


def test_a_token_from_another_issuer_is_refused(idp, settings):
    settings.JIT_OIDC_ISSUER = "https://issuer.example.test"
    client, _ = sign_in(idp, CAROL)
    assert signed_in_as(client) is None and refusals() == ["id_token"]


# --- the second factor -----------------------------------------------------------------------------


def owner_with_device(provider: FakeProvider) -> tuple[User, TOTPDevice]:
    carol = make_user("carol")
    OIDCIdentity.objects.create(user=carol, issuer=provider.issuer, subject=CAROL["sub"])
    return carol, TOTPDevice.objects.create(user=carol, name="app", confirmed=True)


def test_an_authenticator_owner_gives_a_code_after_the_provider(idp, settings):
    settings.JIT_OIDC_GROUP_MAP = [("idp-legal", "legal-l1")]
    carol, device = owner_with_device(idp)
    client, response = sign_in(idp, {**CAROL, "amr": ["pwd", "mfa"], "groups": ["idp-legal"]}, next_url="/access/")

    # The provider's MFA is not trusted unless the operator says so.
    assert response["Location"] == "/oidc/code/" and signed_in_as(client) is None
    assert not carol.groups.exists(), "groups change only once the sign-in is complete"
    wrong = client.post("/oidc/code/", {"code": wrong_code(device)})
    assert wrong.status_code == 400 and signed_in_as(client) is None
    assert events("auth.login_failed")[-1].data == {"reason": "second_factor", "known_user": True, "method": "oidc"}

    device.refresh_from_db()
    device.throttling_failure_count, device.throttling_failure_timestamp = 0, None
    device.save()
    right = client.post("/oidc/code/", {"code": code_for(device)})
    assert right["Location"] == "/access/" and signed_in_as(client) == "carol"
    assert client.get("/access/").status_code == 200, "the session counts as verified by the app"
    assert events("auth.login")[-1].data == {"method": "oidc", "second_factor": "totp"}
    assert list(carol.groups.values_list("name", flat=True)) == ["legal-l1"]


def test_the_code_must_follow_the_provider_within_minutes(idp):
    carol, device = owner_with_device(idp)
    client, _ = sign_in(idp, CAROL)
    session = client.session
    session["jit_oidc_pending"]["at"] -= 301
    session.save()
    late = client.post("/oidc/code/", {"code": code_for(device)})
    assert late["Location"] == "/login/" and signed_in_as(client) is None
    assert client.get("/oidc/code/")["Location"] == "/login/", "the pending sign-in is gone"


def test_a_trusted_provider_mfa_stands_in_for_the_code(idp, settings):
    settings.JIT_OIDC_TRUST_IDP_MFA = True
    owner_with_device(idp)
    client, response = sign_in(idp, {**CAROL, "amr": ["pwd", "mfa"]}, next_url="/access/")
    assert response["Location"] == "/access/" and signed_in_as(client) == "carol"
    assert client.get("/access/").status_code == 200
    assert events("auth.login")[-1].data == {"method": "oidc", "second_factor": "provider"}
    # Without the amr value, the code is asked for even so.
    client, response = sign_in(idp, {**CAROL, "amr": ["pwd"]})
    assert response["Location"] == "/oidc/code/"


def test_a_group_requiring_totp_accepts_a_trusted_provider_mfa_and_only_that(idp, settings):
    settings.JIT_OIDC_GROUP_MAP = [("idp-legal", "legal-l1")]
    GroupSecondFactorPolicy.objects.create(group=Group.objects.create(name="legal-l1"), require_totp=True)
    person = {**CAROL, "groups": ["idp-legal"], "amr": ["mfa"]}

    client, _ = sign_in(idp, person)
    assert client.get("/access/")["Location"].startswith("/account/two-factor/")

    settings.JIT_OIDC_TRUST_IDP_MFA = True
    client, _ = sign_in(idp, person)
    assert client.get("/access/").status_code == 200


# --- re-authentication through the provider ------------------------------------------------------------


@pytest.fixture
def sso_approver(idp: FakeProvider, cast: dict[str, Any]) -> tuple[Client, User]:
    """legal1a, who has no password and signs in through the provider only."""
    approver = cast["legal1a"]
    approver.set_unusable_password()
    approver.save()
    OIDCIdentity.objects.create(user=approver, issuer=idp.issuer, subject="sub-legal1a")
    client, _ = sign_in(idp, {"sub": "sub-legal1a", "preferred_username": "legal1a"})
    assert signed_in_as(client) == "legal1a"
    return client, approver


def decide(client: Client, request: Any, comment: str) -> Any:
    form = {"decision": "approve", "comment": comment, "stage": request.current_stage, "digest": request.digest}
    return client.post(f"/approvals/{request.pk}/", form)


def test_an_approver_without_a_password_re_authenticates_through_the_provider(sso_approver, pending, idp):
    client, approver = sso_approver
    detour = decide(client, pending, "Ticket checked")
    assert detour["Location"] == f"/account/reauth/?next=%2Fapprovals%2F{pending.pk}%2F"

    page = client.get(detour["Location"])
    assert not elements(page, "input", name="password")
    [link] = elements(page, "a", id="reauth-sso")
    assert link.text.strip() == "Confirm with Test IdP"

    back = through_provider(client, link.attrs["href"])
    asked = idp.authorize_requests[-1]
    assert (asked["prompt"], asked["max_age"]) == ("login", "0")
    assert back["Location"] == f"/approvals/{pending.pk}/"
    assert events("auth.reauthenticated")[-1].data == {"second_factor": False, "method": "oidc"}

    form_page = client.get(back["Location"])
    assert elements(form_page, "textarea", name="comment")[0].text.strip() == "Ticket checked"
    assert decide(client, pending, "Ticket checked").status_code == 302
    assert Decision.objects.get().approver == approver


def test_a_provider_session_reused_without_a_new_sign_in_is_not_a_re_authentication(sso_approver, idp):
    client, approver = sso_approver
    idp.auth_time_offset = -600  # the provider signed them in ten minutes ago and did not ask again
    back = through_provider(client, "/oidc/reauth/?next=/access/")
    assert back["Location"] == "/account/reauth/?next=%2Faccess%2F"
    assert refusals("auth.reauth_failed") == ["not_fresh"]
    assert not events("auth.reauthenticated")
    assert signed_in_as(client) == "legal1a", "a failed confirmation does not end the session"


def test_re_authenticating_as_someone_else_at_the_provider_is_refused(sso_approver, idp):
    client, _ = sso_approver
    idp.person = {"sub": "sub-somebody-else", "preferred_username": "mallory"}
    through_provider(client, "/oidc/reauth/?next=/access/")
    assert refusals("auth.reauth_failed") == ["other_identity"]
    assert not events("auth.reauthenticated")


def test_a_device_owner_re_authenticates_with_the_provider_and_a_code(idp):
    carol, device = owner_with_device(idp)
    client, _ = sign_in(idp, CAROL)
    client.post("/oidc/code/", {"code": code_for(device)})
    back = through_provider(client, "/oidc/reauth/?next=/access/")
    assert back["Location"] == "/oidc/code/"
    done = client.post("/oidc/code/", {"code": code_for(device, steps_ahead=1)})
    assert done["Location"] == "/access/"
    assert events("auth.reauthenticated")[-1].data == {"second_factor": True, "method": "oidc"}


# --- configuration errors stop start-up with one line ------------------------------------------------


def oidc_environment() -> dict[str, str]:
    return {
        "DJANGO_DEBUG": "true",
        "JIT_OIDC_ENABLED": "true",
        "JIT_OIDC_ISSUER": "https://idp.example.test",
        "JIT_OIDC_AUTHORIZATION_URL": "https://idp.example.test/authorize",
        "JIT_OIDC_TOKEN_URL": "https://idp.example.test/token",
        "JIT_OIDC_USERINFO_URL": "https://idp.example.test/userinfo",
        "JIT_OIDC_JWKS_URL": "https://idp.example.test/jwks",
        "JIT_OIDC_CLIENT_ID": "jitaccess",
        "JIT_OIDC_CLIENT_SECRET": "s3cret",
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"JIT_OIDC_ISSUER": None}, "JIT_OIDC_ISSUER must be set"),
        ({"JIT_OIDC_TOKEN_URL": "http://idp.example.test/token"}, "JIT_OIDC_TOKEN_URL must use https://"),
        ({"JIT_OIDC_JWKS_URL": "idp/jwks"}, "JIT_OIDC_JWKS_URL must be an absolute https:// URL"),
        ({"JIT_OIDC_CLIENT_ID": None}, "JIT_OIDC_CLIENT_ID must be set"),
        ({"JIT_OIDC_CLIENT_SECRET": None}, "JIT_OIDC_CLIENT_SECRET (or JIT_OIDC_CLIENT_SECRET_FILE) must be set"),
        ({"JIT_OIDC_SIGN_ALGO": "HS256"}, "JIT_OIDC_SIGN_ALGO must be one of"),
        ({"JIT_OIDC_SCOPES": "email,profile"}, "JIT_OIDC_SCOPES must include openid"),
        ({"JIT_OIDC_GROUP_MAP": "idp-legal"}, "JIT_OIDC_GROUP_MAP must be name=name pairs"),
        ({"JIT_OIDC_TRUST_IDP_MFA": "yes", "JIT_OIDC_MFA_AMR": ""}, "JIT_OIDC_MFA_AMR must list an amr value"),
        ({"JIT_OIDC_CREATE_USERS": "maybe"}, "JIT_OIDC_CREATE_USERS must be true or false"),
    ],
)
def test_a_configuration_error_stops_start_up_naming_the_variable(tmp_path, change, message):
    env = {**oidc_environment(), "JIT_VAR_DIR": str(tmp_path)}
    for name, value in change.items():
        if value is None:
            env.pop(name)
        else:
            env[name] = value
    result = manage("check", **env)
    assert result.returncode != 0
    [line] = [line for line in result.stderr.splitlines() if line.strip()]
    assert line.startswith(f"configuration error: {message}"), line


def test_a_complete_configuration_starts(tmp_path):
    secret = tmp_path / "client_secret"
    secret.write_text("s3cret\n")
    env = {**oidc_environment(), "JIT_VAR_DIR": str(tmp_path), "JIT_OIDC_CLIENT_SECRET_FILE": str(secret)}
    del env["JIT_OIDC_CLIENT_SECRET"]
    result = manage("check", **env, JIT_OIDC_GROUP_MAP="idp-legal=legal-l1,idp-ops=datacenter-admins")
    assert result.returncode == 0, result.stderr
