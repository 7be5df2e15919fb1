"""Session expiry by idleness, and re-authentication before sensitive actions."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.conf import settings
from django.test import Client, RequestFactory
from django_otp.plugins.otp_totp.models import TOTPDevice

from jitaccess.accounts.middleware import LAST_SEEN_SESSION_KEY
from jitaccess.accounts.reauth import REAUTH_SESSION_KEY, reauth_fresh, reauth_url
from tests.accounts.conftest import code_for, events, signed_in, wrong_code
from tests.web.conftest import elements, text_of

IDLE = settings.JIT_SESSION_IDLE_SECONDS
REAUTH = "/account/reauth/"


def set_session(client: Client, **values: Any) -> None:
    session = client.session
    session.update(values)
    session.save()


def last_seen(client: Client) -> float:
    return client.session[LAST_SEEN_SESSION_KEY]


# --- idle timeout --------------------------------------------------------------------------------


def test_a_session_idle_too_long_is_signed_out_and_told_why(cast):
    client = signed_in(cast["requester"], reauthenticated=False)
    assert client.get("/account/").status_code == 200
    set_session(client, **{LAST_SEEN_SESSION_KEY: time.time() - IDLE - 1})

    response = client.get("/account/")

    assert response.status_code == 302 and response["Location"] == "/login/?next=/account/"
    assert "_auth_user_id" not in client.session
    login_page = client.get(response["Location"])
    shown = [text_of(item) for item in elements(login_page, "li") if "message" in item.attrs.get("class", "")]
    assert shown == [f"Your session ended after {IDLE // 60} minutes without activity. Sign in again."]
    [event] = events("auth.logout")
    assert (event.actor_name, event.data) == ("requester", {"reason": "idle"})


def test_activity_keeps_the_session_and_api_calls_count(cast):
    client = signed_in(cast["requester"], reauthenticated=False)
    client.get("/account/")
    almost = time.time() - IDLE + 30
    set_session(client, **{LAST_SEEN_SESSION_KEY: almost})

    assert client.get("/api/v1/requests/").status_code == 200

    assert last_seen(client) > almost + 20
    assert client.get("/account/").status_code == 200
    assert not events("auth.logout")


def test_an_api_call_after_the_idle_timeout_is_anonymous(cast):
    client = signed_in(cast["requester"], reauthenticated=False)
    client.get("/account/")
    set_session(client, **{LAST_SEEN_SESSION_KEY: time.time() - IDLE - 1})

    response = client.get("/api/v1/requests/")

    assert response.status_code in (401, 403)
    assert "_auth_user_id" not in client.session
    assert [event.data for event in events("auth.logout")] == [{"reason": "idle"}]


def test_a_form_sent_after_the_idle_timeout_goes_to_sign_in_without_replay(cast):
    client = signed_in(cast["requester"], reauthenticated=False)
    client.get("/account/")
    set_session(client, **{LAST_SEEN_SESSION_KEY: time.time() - IDLE - 1})

    response = client.post(REAUTH, {"password": "pw-requester"})

    assert response.status_code == 302 and response["Location"] == "/login/"
    assert not events("auth.reauthenticated")


def test_a_sign_out_by_the_person_has_no_reason(cast):
    client = signed_in(cast["requester"], reauthenticated=False)
    client.post("/logout/")

    assert [event.data for event in events("auth.logout")] == [{}]


# --- re-authentication ---------------------------------------------------------------------------


def request_of(client: Client, user: Any, path: str = "/approvals/7/") -> Any:
    request = RequestFactory().get(path)
    request.user = user
    request.session = client.session
    return request


def test_reauth_url_returns_to_the_page_shown_now(cast):
    request = request_of(Client(), cast["legal1a"], "/approvals/7/?tab=history")

    assert reauth_url(request) == "/account/reauth/?next=%2Fapprovals%2F7%2F%3Ftab%3Dhistory"


def test_the_password_re_authenticates_a_user_without_a_device(cast):
    user = cast["legal1a"]
    client = signed_in(user, reauthenticated=False)
    assert not reauth_fresh(request_of(client, user))
    page = client.get(REAUTH + "?next=/approvals/7/")
    assert page.status_code == 200 and "no-store" in page["Cache-Control"]
    assert {e.attrs["name"] for e in elements(page, "input")} == {"csrfmiddlewaretoken", "password", "next"}

    response = client.post(REAUTH, {"password": "pw-legal1a", "next": "/approvals/7/"})

    assert response.status_code == 302 and response["Location"] == "/approvals/7/"
    assert reauth_fresh(request_of(client, user))
    [event] = events("auth.reauthenticated")
    assert (event.actor_name, event.data) == ("legal1a", {"second_factor": False, "method": "password"})


def test_a_re_authentication_goes_stale_after_the_window(cast):
    user = cast["legal1a"]
    client = signed_in(user, reauthenticated=False)
    client.post(REAUTH, {"password": "pw-legal1a"})
    stamp = client.session[REAUTH_SESSION_KEY]

    set_session(client, **{REAUTH_SESSION_KEY: {**stamp, "at": time.time() - settings.JIT_REAUTH_SECONDS + 5}})
    assert reauth_fresh(request_of(client, user))
    set_session(client, **{REAUTH_SESSION_KEY: {**stamp, "at": time.time() - settings.JIT_REAUTH_SECONDS - 1}})
    assert not reauth_fresh(request_of(client, user))
    # Nor does it hold for anyone else, or from the future.
    set_session(client, **{REAUTH_SESSION_KEY: {**stamp, "at": time.time()}})
    assert not reauth_fresh(request_of(client, cast["legal1b"]))
    set_session(client, **{REAUTH_SESSION_KEY: {**stamp, "at": time.time() + 600}})
    assert not reauth_fresh(request_of(client, user))


def test_a_wrong_password_is_refused_beside_the_field_and_audited(cast):
    user = cast["legal1a"]
    client = signed_in(user, reauthenticated=False)

    response = client.post(REAUTH, {"password": "not-it", "next": "/approvals/7/"})

    assert response.status_code == 400
    errors = [text_of(e) for e in elements(response, "ul", **{"class": "errorlist"})]
    assert errors == ["That password is not right."]
    assert not reauth_fresh(request_of(client, user))
    [event] = events("auth.reauth_failed")
    assert (event.actor_name, event.outcome, event.data) == (
        "legal1a",
        "denied",
        {"reason": "password", "method": "password"},
    )
    assert not events("auth.login_failed")  # one event per failure
    assert elements(response, "input", name="next")[0].attrs["value"] == "/approvals/7/"


@pytest.fixture
def with_device(cast: dict[str, Any]) -> tuple[Any, TOTPDevice, Client]:
    user = cast["legal2"]
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    return user, device, signed_in(user, device, reauthenticated=False)


def test_a_device_owner_gives_the_password_and_a_current_code(with_device):
    user, device, client = with_device
    page = client.get(REAUTH)
    assert {e.attrs["name"] for e in elements(page, "input")} >= {"password", "code"}

    missing = client.post(REAUTH, {"password": "pw-legal2"})
    assert missing.status_code == 400 and not events("auth.reauthenticated")

    wrong = client.post(REAUTH, {"password": "pw-legal2", "code": wrong_code(device)})
    assert wrong.status_code == 400
    assert [text_of(e) for e in elements(wrong, "ul", **{"class": "errorlist"})] == [
        "That code was not accepted. Enter the code your authenticator app shows now; each code works once."
    ]
    assert [e.data["reason"] for e in events("auth.reauth_failed")] == ["second_factor"]
    device.refresh_from_db()
    device.throttle_reset()

    response = client.post(REAUTH, {"password": "pw-legal2", "code": code_for(device)})

    assert response.status_code == 302 and response["Location"] == "/account/"
    assert reauth_fresh(request_of(client, user))
    assert [e.data for e in events("auth.reauthenticated")] == [{"second_factor": True, "method": "password"}]
    # The code is spent: the same one does not re-authenticate twice.
    again = client.post(REAUTH, {"password": "pw-legal2", "code": code_for(device)})
    assert again.status_code == 400


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example/approvals/", "/\\evil.example", "javascript:alert(1)"]
)
def test_re_authentication_never_redirects_to_another_site(cast, target):
    client = signed_in(cast["legal1a"], reauthenticated=False)

    page = client.get(REAUTH, {"next": target})
    response = client.post(REAUTH, {"password": "pw-legal1a", "next": target})

    assert elements(page, "input", name="next")[0].attrs["value"] == ""
    assert response.status_code == 302 and response["Location"] == "/account/"


def test_failed_re_authentications_count_toward_the_lockout(cast):
    client = signed_in(cast["legal1a"], reauthenticated=False)

    codes = [client.post(REAUTH, {"password": "wrong"}).status_code for _ in range(settings.AXES_FAILURE_LIMIT)]
    locked = client.post(REAUTH, {"password": "pw-legal1a"})

    assert codes == [400] * (settings.AXES_FAILURE_LIMIT - 1) + [429]
    assert locked.status_code == 429 and b"Sign-in is locked" in locked.content
    assert len(events("auth.locked_out")) == 1
    assert events("auth.reauth_failed")[-1].data == {"reason": "locked_out", "method": "password"}


def test_wrong_codes_count_toward_the_lockout_too(with_device):
    _, device, client = with_device
    codes = []
    for _ in range(settings.AXES_FAILURE_LIMIT):
        codes.append(client.post(REAUTH, {"password": "pw-legal2", "code": wrong_code(device)}).status_code)
        device.refresh_from_db()
        device.throttle_reset()

    assert codes[-1] == 429
    assert client.post(REAUTH, {"password": "pw-legal2", "code": code_for(device)}).status_code == 429


def test_re_authentication_needs_a_signed_in_session(db):
    response = Client().get(REAUTH + "?next=/approvals/7/")

    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/account/reauth/%3Fnext%3D/approvals/7/"
