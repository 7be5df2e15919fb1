"""Sign-in, sign-out and the home page: the admin's password + TOTP rules for everyone, one
answer for every failure, CSRF on the form, and a home page that sends each role somewhere useful."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from jitaccess.admin_site import SIGN_IN_REFUSED
from tests.accounts.test_second_factor import totp_now
from tests.web.conftest import by_id, elements, link, recorded, signed_in, text_of


def sign_in(client: Client, username: str, password: str | None = None, **extra: str) -> Any:
    return client.post("/login/", {"username": username, "password": password or "pw-" + username, **extra})


def is_signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def test_the_sign_in_page_labels_every_field(db):
    response = Client().get("/login/")

    assert response.status_code == 200
    labels = {element.attrs["for"]: text_of(element) for element in elements(response, "label")}
    assert labels == {"id_username": "Username", "id_password": "Password", "id_otp_token": "Authenticator code"}
    assert elements(response, "input", type="hidden", name="csrfmiddlewaretoken")
    assert by_id(response, "id_otp_token").attrs["autocomplete"] == "one-time-code"


def test_an_auditor_signs_in_with_the_password_and_lands_on_the_audit_events(cast):
    # The auditor is not staff: the admin's own form would refuse them.
    assert not cast["auditor"].is_staff
    client = Client()

    response = sign_in(client, "auditor")

    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get("/")["Location"] == "/audit/"
    assert client.get("/audit/").status_code == 200
    assert [event.actor_name for event in recorded("auth.login")] == ["auditor"]


def test_sign_in_returns_to_the_page_asked_for_but_never_to_another_site(cast):
    asked = Client()
    assert sign_in(asked, "auditor", next="/audit/verify/")["Location"] == "/audit/verify/"

    elsewhere = Client()
    assert sign_in(elsewhere, "auditor", next="https://evil.example/")["Location"] == "/"


@pytest.mark.parametrize("password", ["not-the-password", "PW-AUDITOR"])
def test_a_wrong_password_gets_the_one_answer_and_is_audited(cast, password):
    client = Client()

    response = sign_in(client, "auditor", password=password)

    assert response.status_code == 200
    assert text_of(by_id(response, "sign-in-error")) == SIGN_IN_REFUSED
    assert not is_signed_in(client)
    assert [event.target_id for event in recorded("auth.login_failed")] == ["auditor"]


@pytest.fixture
def device(cast: dict[str, Any]) -> TOTPDevice:
    return TOTPDevice.objects.create(user=cast["auditor"], name="phone", confirmed=True)


def test_a_device_owner_without_the_code_gets_the_same_answer_as_a_wrong_password(cast, device):
    client = Client()

    without_code = sign_in(client, "auditor")
    wrong_password = sign_in(Client(), "auditor", password="not-the-password")

    assert text_of(by_id(without_code, "sign-in-error")) == SIGN_IN_REFUSED
    assert not is_signed_in(client)
    # Nothing in the page tells that the password was right: not the password echoed back, not a
    # device chooser for a user with one device.
    assert b"pw-auditor" not in without_code.content
    assert not elements(without_code, "select")
    assert by_id(without_code, "id_password").attrs.get("value") is None
    assert {e.attrs.get("name") for e in elements(without_code, "input")} == {
        e.attrs.get("name") for e in elements(wrong_password, "input")
    }


def test_a_device_owner_signs_in_with_password_and_code(cast, device):
    client = Client()
    wrong = f"{(int(totp_now(device)) + 1) % 10**device.digits:0{device.digits}d}"

    refused = sign_in(client, "auditor", otp_token=wrong)
    assert text_of(by_id(refused, "sign-in-error")) == SIGN_IN_REFUSED
    assert not is_signed_in(client)
    # django-otp makes a device wait after a wrong code; the test does not.
    device.refresh_from_db()
    device.throttle_reset()
    accepted = sign_in(client, "auditor", otp_token=totp_now(device))

    assert accepted.status_code == 302
    assert client.get("/audit/").status_code == 200


def test_a_device_owners_session_without_the_code_reaches_no_audit_page(cast, device):
    # force_login skips the form, as a password-only sign-in elsewhere would.
    response = signed_in(cast["auditor"]).get("/audit/")

    assert response.status_code == 302 and response["Location"] == "/login/?next=/audit/"


def test_the_sign_in_form_refuses_a_post_without_its_csrf_token(cast):
    client = Client(enforce_csrf_checks=True)

    forged = client.post("/login/", {"username": "auditor", "password": "pw-auditor"})

    assert forged.status_code == 403
    assert not is_signed_in(client)
    token = client.get("/login/").cookies["csrftoken"].value
    genuine = client.post("/login/", {"username": "auditor", "password": "pw-auditor", "csrfmiddlewaretoken": token})
    assert genuine.status_code == 302 and is_signed_in(client)


def test_sign_out_takes_a_post_only(cast):
    client = signed_in(cast["auditor"])

    assert client.get("/logout/").status_code == 405
    assert is_signed_in(client)
    response = client.post("/logout/")

    assert response.status_code == 302 and response["Location"] == "/login/"
    assert not is_signed_in(client)
    assert [event.actor_name for event in recorded("auth.logout")] == ["auditor"]
    assert client.get("/audit/")["Location"] == "/login/?next=/audit/"


def test_every_page_offers_sign_out_as_a_form(cast):
    response = signed_in(cast["auditor"]).get("/audit/")

    form = [f for f in elements(response, "form") if f.attrs.get("action") == "/logout/"]
    assert len(form) == 1 and form[0].attrs["method"] == "post"


# --- home ---------------------------------------------------------------------------------------


def test_home_sends_anonymous_visitors_to_sign_in(db):
    response = Client().get("/")

    assert response.status_code == 302 and response["Location"] == "/login/?next=/"


def test_home_sends_an_auditor_to_the_audit_events(cast):
    assert signed_in(cast["auditor"]).get("/")["Location"] == "/audit/"


@pytest.mark.parametrize(
    "role, shown, not_shown",
    [
        ("requester", ["Request elevated access."], ["Decide requests.", "Configure access."]),
        ("legal1a", ["Decide requests."], ["Request elevated access.", "Configure access."]),
        ("secadmin", ["Configure access."], ["Request elevated access.", "Decide requests."]),
        ("svc", ["Automation."], ["Request elevated access.", "Configure access."]),
        ("outsider", [], ["Request elevated access.", "Decide requests.", "Configure access.", "Automation."]),
    ],
)
def test_home_tells_everyone_else_what_they_can_do(cast, entitlement, role, shown, not_shown):
    response = signed_in(cast[role]).get("/")

    assert response.status_code == 200
    tasks = [text_of(e) for e in elements(response, "strong")]
    assert all(task in tasks for task in shown), tasks
    assert not any(task in tasks for task in not_shown), tasks
    assert link(response, "Interactive API documentation") == "/api/v1/docs/"
    # The nav holds no audit links for them.
    assert link(response, "Audit events") is None
    assert link(response, "API docs") == "/api/v1/docs/"


def test_home_links_the_admin_for_a_staff_security_admin(cast):
    cast["secadmin"].is_staff = True
    cast["secadmin"].save()

    response = signed_in(cast["secadmin"]).get("/")

    assert link(response, "open the admin") == "/admin/"
    assert link(response, "Admin") == "/admin/"


def test_the_api_docs_stay_reachable(db):
    assert Client().get("/api/v1/docs/").status_code == 200


def test_home_is_read_only(cast):
    assert signed_in(cast["requester"]).post("/").status_code == 405
