"""The account pages: the account summary and the authenticator app's set-up, replacement and
removal, each proved by a real TOTP code computed from the device's key."""

from __future__ import annotations

import time
from base64 import b32encode
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from jitaccess.accounts.models import GroupSecondFactorPolicy
from jitaccess.accounts.reauth import REAUTH_SESSION_KEY
from tests.accounts.conftest import code_for, events, signed_in, wrong_code
from tests.web.conftest import by_id, elements, facts_of, link, text_of

TWO_FACTOR = "/account/two-factor/"


def pending_device(user: Any) -> TOTPDevice:
    return TOTPDevice.objects.get(user=user, confirmed=False)


def field_errors(response: Any, field_id: str) -> list[str]:
    """The error messages shown inside the field block that holds ``field_id``."""
    for block in elements(response, "div"):
        if "field" in block.attrs.get("class", "").split() and any(
            child.attrs.get("id") == field_id for child in block.children
        ):
            return [text_of(item) for ul in block.children if ul.tag == "ul" for item in ul.children]
    raise AssertionError(f"no field {field_id}")


def shown_secret(response: Any) -> str:
    return text_of(by_id(response, "totp-secret")).replace(" ", "")


def secret_of(device: TOTPDevice) -> str:
    return b32encode(device.bin_key).decode().rstrip("=")


# --- the account ---------------------------------------------------------------------------------


def test_the_account_page_sends_anonymous_visitors_to_sign_in(db):
    response = Client().get("/account/")

    assert response.status_code == 302 and response["Location"] == "/login/?next=/account/"


def test_the_account_page_shows_groups_and_the_second_factor(cast):
    response = signed_in(cast["legal1a"]).get("/account/")

    assert response.status_code == 200
    assert facts_of(response) == {
        "Username": "legal1a",
        "Groups": "legal-l1",
        "Authenticator app": "Not set up",
        "Required for you": "No",
    }
    assert link(response, "Set up an authenticator app") == TWO_FACTOR
    assert "no-cache" in response["Cache-Control"]


def test_the_account_page_says_when_a_group_requires_the_app(cast):
    GroupSecondFactorPolicy.objects.create(group=Group.objects.get(name="legal-l1"), require_totp=True)
    device = TOTPDevice.objects.create(user=cast["legal1a"], name="phone", confirmed=True)

    response = signed_in(cast["legal1a"], device).get("/account/")

    facts = facts_of(response)
    assert facts["Authenticator app"].startswith("Set up since")
    assert facts["Required for you"] == "Yes, by legal-l1"
    assert link(response, "Manage your authenticator app") == TWO_FACTOR


def test_the_account_page_takes_no_post(cast):
    assert signed_in(cast["requester"]).post("/account/").status_code == 405


# --- set-up --------------------------------------------------------------------------------------


def test_set_up_shows_a_qr_code_and_the_key_and_confirms_with_a_current_code(cast):
    user = cast["requester"]
    client = signed_in(user)

    page = client.get(TWO_FACTOR)

    assert page.status_code == 200
    assert "no-store" in page["Cache-Control"]
    device = pending_device(user)
    # The QR code is drawn into the page (no image service), and the key is there for typing in.
    assert elements(page, "svg") and not elements(page, "img")
    assert shown_secret(page) == secret_of(device)
    assert device.key not in page.content.decode()
    # Reloading shows the same key: the app that already scanned it stays valid.
    assert shown_secret(client.get(TWO_FACTOR)) == secret_of(device)

    response = client.post(TWO_FACTOR, {"confirm-code": code_for(device)})

    assert response.status_code == 302 and response["Location"] == "/account/"
    device.refresh_from_db()
    assert device.confirmed
    # The code just given verifies this session: it goes on without signing in again.
    assert client.session[DEVICE_ID_SESSION_KEY] == device.persistent_id
    assert client.get("/api/v1/requests/").status_code == 200
    [event] = events("auth.second_factor_enrolled")
    assert (event.actor_name, event.target_id, event.data["replaced"]) == ("requester", "requester", False)
    # The key of a confirmed device is never shown again.
    after = client.get(TWO_FACTOR)
    assert secret_of(device) not in after.content.decode().replace(" ", "")
    assert not elements(after, "svg")
    assert not elements(after, id="totp-secret")


def test_a_wrong_code_is_refused_beside_the_field_and_leaves_the_device_unconfirmed(cast):
    user = cast["requester"]
    client = signed_in(user)
    client.get(TWO_FACTOR)
    device = pending_device(user)

    response = client.post(TWO_FACTOR, {"confirm-code": wrong_code(device)})

    assert response.status_code == 400
    assert field_errors(response, "id_confirm-code") == [
        "That code was not accepted. Enter the code your authenticator app shows now; each code works once."
    ]
    assert by_id(response, "id_confirm-code").attrs.get("aria-invalid") == "true"
    assert not pending_device(user).confirmed
    assert not events("auth.second_factor_enrolled")
    # django-otp makes the device wait after a wrong code; the page says so rather than "wrong".
    throttled = client.post(TWO_FACTOR, {"confirm-code": code_for(device)})
    assert throttled.status_code == 400
    assert field_errors(throttled, "id_confirm-code")[0].startswith("Too many wrong codes in a row: wait")
    pending_device(user).throttle_reset()
    assert client.post(TWO_FACTOR, {"confirm-code": code_for(device)}).status_code == 302


@pytest.mark.parametrize("typed", ["", "12345", "abcdef", "1234567890"])
def test_a_code_that_is_not_six_digits_is_refused_beside_the_field(cast, typed):
    client = signed_in(cast["requester"])
    client.get(TWO_FACTOR)

    response = client.post(TWO_FACTOR, {"confirm-code": typed})

    assert response.status_code == 400
    assert field_errors(response, "id_confirm-code")
    assert not TOTPDevice.objects.filter(confirmed=True).exists()


def test_a_code_typed_with_a_space_is_accepted(cast):
    client = signed_in(cast["requester"])
    client.get(TWO_FACTOR)
    code = code_for(pending_device(cast["requester"]))

    assert client.post(TWO_FACTOR, {"confirm-code": f"{code[:3]} {code[3:]}"}).status_code == 302


def test_set_up_returns_to_the_page_asked_for_and_never_elsewhere(cast):
    client = signed_in(cast["auditor"])
    client.get(TWO_FACTOR + "?next=/audit/")
    device = pending_device(cast["auditor"])

    response = client.post(TWO_FACTOR, {"confirm-code": code_for(device), "next": "https://evil.example/"})
    assert response["Location"] == "/account/"

    other = signed_in(cast["legal1a"])
    page = other.get(TWO_FACTOR + "?next=/audit/")
    assert elements(page, "input", name="next")[0].attrs["value"] == "/audit/"
    response = other.post(TWO_FACTOR, {"confirm-code": code_for(pending_device(cast["legal1a"])), "next": "/audit/"})
    assert response["Location"] == "/audit/"


def test_each_session_sets_up_its_own_key(cast):
    first, second = signed_in(cast["requester"]), signed_in(cast["requester"])
    first_secret = shown_secret(first.get(TWO_FACTOR))

    second_secret = shown_secret(second.get(TWO_FACTOR))

    # A key shown to one session is never handed to another; the first one's set-up has ended.
    assert first_secret != second_secret
    assert TOTPDevice.objects.filter(user=cast["requester"]).count() == 1
    response = first.post(TWO_FACTOR, {"confirm-code": "123456"})
    assert response.status_code == 302 and response["Location"] == TWO_FACTOR


def test_set_up_needs_the_csrf_token(cast):
    client = Client(enforce_csrf_checks=True)
    client.force_login(cast["requester"])
    session = client.session
    session[REAUTH_SESSION_KEY] = {"user": cast["requester"].pk, "at": time.time()}
    session.save()
    client.get(TWO_FACTOR)

    response = client.post(TWO_FACTOR, {"confirm-code": code_for(pending_device(cast["requester"]))})

    assert response.status_code == 403
    assert not TOTPDevice.objects.filter(confirmed=True).exists()


def test_a_device_owners_unverified_session_cannot_open_the_page(cast):
    TOTPDevice.objects.create(user=cast["requester"], name="phone", confirmed=True)

    response = signed_in(cast["requester"]).get(TWO_FACTOR)

    assert response.status_code == 302 and response["Location"] == "/login/?next=/account/two-factor/"


# --- replacement and removal ---------------------------------------------------------------------


@pytest.fixture
def owner(cast: dict[str, Any]) -> tuple[Any, TOTPDevice, Client]:
    user = cast["requester"]
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    return user, device, signed_in(user, device)


def test_the_page_of_a_device_owner_offers_replace_and_remove_and_shows_no_key(owner):
    user, device, client = owner

    page = client.get(TWO_FACTOR)

    assert page.status_code == 200
    assert not elements(page, id="totp-secret") and not elements(page, "svg")
    assert {form.attrs["action"] for form in elements(page, "form")} >= {
        "/account/two-factor/replace/",
        "/account/two-factor/remove/",
    }
    assert not TOTPDevice.objects.filter(user=user, confirmed=False).exists()


def test_replacing_needs_a_code_of_the_current_app_then_one_of_the_new(owner):
    user, old, client = owner

    refused = client.post("/account/two-factor/replace/", {"replace-code": wrong_code(old)})
    assert refused.status_code == 400
    assert field_errors(refused, "id_replace-code")
    assert not TOTPDevice.objects.filter(user=user, confirmed=False).exists()
    old.refresh_from_db()
    old.throttle_reset()

    started = client.post("/account/two-factor/replace/", {"replace-code": code_for(old)})
    assert started.status_code == 302 and started["Location"] == TWO_FACTOR
    new = pending_device(user)
    page = client.get(TWO_FACTOR)
    assert shown_secret(page) == secret_of(new)
    # The old app keeps working until the new one is confirmed.
    assert TOTPDevice.objects.get(pk=old.pk).confirmed

    confirmed = client.post(TWO_FACTOR, {"confirm-code": code_for(new)})

    assert confirmed.status_code == 302
    assert list(TOTPDevice.objects.filter(user=user).values_list("pk", "confirmed")) == [(new.pk, True)]
    assert [e.data["reason"] for e in events("auth.second_factor_removed")] == ["replaced"]
    assert [e.data["replaced"] for e in events("auth.second_factor_enrolled")] == [True]
    assert client.session[DEVICE_ID_SESSION_KEY] == TOTPDevice.objects.get(pk=new.pk).persistent_id


def test_a_set_up_overtaken_by_a_device_confirmed_elsewhere_cannot_replace_it(cast):
    user = cast["requester"]
    client = signed_in(user)
    client.get(TWO_FACTOR)
    pending = pending_device(user)
    # Meanwhile another session of the same person confirms an app; this session verifies with it.
    other = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = other.persistent_id
    session.save()

    assert not elements(client.get(TWO_FACTOR), id="totp-secret")
    response = client.post(TWO_FACTOR, {"confirm-code": code_for(pending)})

    assert response.status_code == 302 and response["Location"] == TWO_FACTOR
    assert list(TOTPDevice.objects.filter(user=user, confirmed=True).values_list("pk", flat=True)) == [other.pk]
    assert not events("auth.second_factor_enrolled")


def test_a_replacement_can_be_abandoned(owner):
    user, old, client = owner
    client.post("/account/two-factor/replace/", {"replace-code": code_for(old)})

    response = client.post("/account/two-factor/cancel/")

    assert response.status_code == 302
    assert list(TOTPDevice.objects.filter(user=user).values_list("pk", flat=True)) == [old.pk]
    assert not elements(client.get(TWO_FACTOR), id="totp-secret")


def test_removing_needs_a_current_code_and_is_audited(owner):
    user, device, client = owner

    refused = client.post("/account/two-factor/remove/", {"remove-code": wrong_code(device)})
    assert refused.status_code == 400
    assert field_errors(refused, "id_remove-code")
    assert TOTPDevice.objects.filter(pk=device.pk, confirmed=True).exists()
    device.refresh_from_db()
    device.throttle_reset()

    response = client.post("/account/two-factor/remove/", {"remove-code": code_for(device)})

    assert response.status_code == 302 and response["Location"] == "/account/"
    assert not TOTPDevice.objects.filter(user=user).exists()
    [event] = events("auth.second_factor_removed")
    assert (event.actor_name, event.outcome, event.data["reason"]) == ("requester", "success", "removed")
    assert facts_of(client.get("/account/"))["Authenticator app"] == "Not set up"


def test_removing_is_refused_while_a_group_requires_the_app(owner):
    user, device, client = owner
    GroupSecondFactorPolicy.objects.create(group=user.groups.get(), require_totp=True)

    page = client.get(TWO_FACTOR)
    assert not [f for f in elements(page, "form") if f.attrs.get("action") == "/account/two-factor/remove/"]

    response = client.post("/account/two-factor/remove/", {"remove-code": code_for(device)})

    assert response.status_code == 403
    assert b"datacenter-admins requires an authenticator app, so it cannot be removed" in response.content
    assert TOTPDevice.objects.filter(pk=device.pk, confirmed=True).exists()
    assert not events("auth.second_factor_removed")


def test_remove_and_replace_take_post_only(owner):
    _, _, client = owner
    assert client.get("/account/two-factor/remove/").status_code == 405
    assert client.get("/account/two-factor/replace/").status_code == 405
