"""The TOTP second factor holds on every way in: the admin login, admin pages and session API calls.

The token endpoint's own check is tested in test_api_tokens.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.test import APIClient

from jitaccess import roles
from jitaccess.admin_site import SIGN_IN_REFUSED
from tests.conftest import make_user

LOGIN_URL = "/admin/login/?next=/admin/"
ADMIN_PAGE = "/admin/approvals/entitlement/"
API_PROBE = "/api/v1/requests/"


def totp_now(device: TOTPDevice) -> str:
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    return f"{totp.token():0{device.digits}d}"


@pytest.fixture
def with_device(db: Any) -> tuple[Any, TOTPDevice]:
    user = make_user("otp-admin", roles.SECURITY_ADMINS, is_staff=True)
    return user, TOTPDevice.objects.create(user=user, name="phone", confirmed=True)


@pytest.fixture
def without_device(db: Any) -> Any:
    return make_user("plain-admin", roles.SECURITY_ADMINS, is_staff=True)


def admin_login(client: Client, username: str, **extra: str) -> Any:
    return client.post(LOGIN_URL, {"username": username, "password": "pw-" + username, **extra})


def signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def test_it_refuses_the_admin_login_of_a_device_owner_without_the_code(with_device):
    user, _ = with_device
    client = Client()
    response = admin_login(client, user.username)
    wrong_password = Client().post(LOGIN_URL, {"username": user.username, "password": "not-the-password"})
    assert response.status_code == 200
    assert SIGN_IN_REFUSED.encode() in response.content
    # The same words as for a wrong password: the form does not confirm that the password was right.
    assert SIGN_IN_REFUSED.encode() in wrong_password.content
    assert b"OTP token" not in response.content
    assert not signed_in(client)
    assert client.get(ADMIN_PAGE).status_code == 302


def test_it_refuses_the_admin_login_of_a_device_owner_with_a_wrong_code(with_device):
    user, device = with_device
    wrong = f"{(int(totp_now(device)) + 1) % 10**device.digits:0{device.digits}d}"
    client = Client()
    response = admin_login(client, user.username, otp_token=wrong)
    assert response.status_code == 200
    assert SIGN_IN_REFUSED.encode() in response.content
    assert not signed_in(client)


def test_it_lets_a_device_owner_into_the_admin_with_password_and_code(with_device):
    user, device = with_device
    client = Client()
    response = admin_login(client, user.username, otp_token=totp_now(device))
    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200
    assert client.get(ADMIN_PAGE).status_code == 200
    # The verified session is good for the API too.
    assert client.get(API_PROBE).status_code == 200


def test_it_refuses_a_session_of_a_device_owner_that_skipped_the_code(with_device):
    user, _ = with_device
    client = APIClient()
    client.force_login(user)
    assert client.get(API_PROBE).status_code in (401, 403)
    for page in ("/admin/", ADMIN_PAGE):
        response = client.get(page)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


def test_it_signs_a_user_without_a_device_into_the_admin_with_the_password(without_device):
    client = Client()
    response = admin_login(client, without_device.username)
    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert client.get(ADMIN_PAGE).status_code == 200


def test_it_accepts_the_session_of_a_user_without_a_device(without_device):
    client = APIClient()
    client.force_login(without_device)
    assert client.get(API_PROBE).status_code == 200
    assert client.get(ADMIN_PAGE).status_code == 200


def test_it_asks_no_code_of_a_user_whose_device_is_not_confirmed(without_device):
    # An enrolment that was never finished must not lock its owner out.
    TOTPDevice.objects.create(user=without_device, name="half-enrolled", confirmed=False)
    client = Client()
    assert admin_login(client, without_device.username).status_code == 302
    assert client.get(ADMIN_PAGE).status_code == 200
