"""Lockout after repeated failed sign-ins (django-axes): the browser sign-in, the admin login and the
token endpoint count alike; the lockout is audited once, holds even against the right password,
ends after the cool-off, and is per user name and address."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.core.management import call_command
from django.test import Client
from rest_framework.test import APIClient

from jitaccess.accounts.models import ApiToken
from tests.accounts.conftest import events
from tests.stores import database_dump

LIMIT = settings.AXES_FAILURE_LIMIT
ADMIN_LOGIN = "/admin/login/?next=/admin/"


def browser_sign_in(client: Client, username: str, password: str, path: str = "/login/") -> Any:
    return client.post(path, {"username": username, "password": password})


def token_request(client: APIClient, username: str, password: str) -> Any:
    return client.post("/api/v1/auth/token/", {"username": username, "password": password}, format="json")


def is_signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def fail_until_locked(send: Any) -> list[int]:
    return [send("not-the-password").status_code for _ in range(LIMIT)]


def test_the_limit_comes_from_the_environment_with_sane_defaults():
    # tests/settings.py leaves them unset: the documented defaults are in force.
    assert (settings.AXES_FAILURE_LIMIT, settings.AXES_COOLOFF_TIME) == (5, timedelta(minutes=15))
    assert settings.AXES_ENABLED


def test_the_sign_in_page_locks_after_the_limit_and_says_how_long(cast):
    client = Client()

    codes = fail_until_locked(lambda password: browser_sign_in(client, "auditor", password))
    locked = browser_sign_in(client, "auditor", "pw-auditor")

    assert codes == [200] * (LIMIT - 1) + [429]
    assert locked.status_code == 429
    assert not is_signed_in(client)
    text = locked.content.decode()
    assert "Sign-in is locked for 15 more minutes" in text and "ask a security admin" in text
    assert 14 * 60 < int(locked["Retry-After"]) <= 15 * 60
    assert "no-store" in locked["Cache-Control"]
    # One lockout event; every attempt a failure, the ones after the lock marked as unchecked.
    [lockout] = events("auth.locked_out")
    assert (lockout.target_id, lockout.outcome, lockout.data["failures"]) == ("auditor", "denied", LIMIT)
    reasons = [event.data["reason"] for event in events("auth.login_failed")]
    assert reasons == ["password"] * LIMIT + ["locked_out"]


def test_the_admin_login_locks_alike(cast):
    admin = cast["secadmin"]
    admin.is_staff = True
    admin.save()
    client = Client()

    codes = fail_until_locked(lambda password: browser_sign_in(client, "secadmin", password, ADMIN_LOGIN))
    locked = browser_sign_in(client, "secadmin", "pw-secadmin", ADMIN_LOGIN)

    assert codes == [200] * (LIMIT - 1) + [429]
    assert locked.status_code == 429 and b"Sign-in locked" in locked.content
    assert not is_signed_in(client)
    assert len(events("auth.locked_out")) == 1


def test_the_token_endpoint_locks_alike_and_answers_json(cast):
    client = APIClient()

    codes = fail_until_locked(lambda password: token_request(client, "requester", password))
    locked = token_request(client, "requester", "pw-requester")

    assert codes == [401] * (LIMIT - 1) + [429]
    assert locked.status_code == 429
    body = locked.json()
    assert body["code"] == "locked_out" and "15 more minutes" in body["detail"]
    assert int(locked["Retry-After"]) > 0
    assert not ApiToken.objects.exists()
    assert [event.target_id for event in events("auth.locked_out")] == ["requester"]


def test_failures_on_every_path_add_up(cast):
    cast["secadmin"].is_staff = True
    cast["secadmin"].save()
    browser, api = Client(), APIClient()
    sends = [
        lambda: browser_sign_in(browser, "secadmin", "wrong"),
        lambda: browser_sign_in(browser, "secadmin", "wrong", ADMIN_LOGIN),
        lambda: token_request(api, "secadmin", "wrong"),
    ]

    codes = [sends[i % 3]().status_code for i in range(LIMIT)]

    assert codes[-1] == 429
    assert browser_sign_in(browser, "secadmin", "pw-secadmin").status_code == 429


def test_the_lock_is_per_user_name_and_address(cast):
    attacker = Client(REMOTE_ADDR="203.0.113.9")
    fail_until_locked(lambda password: browser_sign_in(attacker, "auditor", password))

    # The person at their own address signs in: a guesser elsewhere cannot lock them out.
    own = Client(REMOTE_ADDR="198.51.100.7")
    assert browser_sign_in(own, "auditor", "pw-auditor").status_code == 302
    # Another account from the guesser's address is not locked either.
    assert browser_sign_in(attacker, "requester", "pw-requester").status_code == 302


def test_the_lock_ends_after_the_cool_off(cast):
    client = Client()
    fail_until_locked(lambda password: browser_sign_in(client, "auditor", password))
    assert browser_sign_in(client, "auditor", "pw-auditor").status_code == 429

    # The clock moves on past the cool-off (axes keeps the time of the last counted failure).
    AccessAttempt.objects.update(attempt_time=AccessAttempt.objects.get().attempt_time - settings.AXES_COOLOFF_TIME)

    response = browser_sign_in(client, "auditor", "pw-auditor")
    assert response.status_code == 302 and is_signed_in(client)
    assert not AccessAttempt.objects.exists()


def test_attempts_during_the_lock_do_not_extend_it(cast):
    client = Client()
    fail_until_locked(lambda password: browser_sign_in(client, "auditor", password))
    locked_at = AccessAttempt.objects.get().attempt_time

    for _ in range(3):
        assert browser_sign_in(client, "auditor", "another-guess").status_code == 429

    assert AccessAttempt.objects.get().attempt_time == locked_at
    assert len(events("auth.locked_out")) == 1


@pytest.mark.parametrize("path", ["/login/", "/api/v1/auth/token/"])
def test_a_successful_sign_in_forgets_the_failures(cast, path):
    def attempt(password: str) -> Any:
        if path == "/login/":
            return browser_sign_in(Client(), "requester", password)
        return token_request(APIClient(), "requester", password)

    for _ in range(LIMIT - 1):
        attempt("wrong")
    assert attempt("pw-requester").status_code in (201, 302)
    assert not AccessAttempt.objects.exists()

    codes = [attempt("wrong").status_code for _ in range(LIMIT - 1)]
    assert 429 not in codes


def test_a_security_admin_unlocks_a_name_with_the_management_command(cast):
    client = Client()
    fail_until_locked(lambda password: browser_sign_in(client, "auditor", password))

    call_command("axes_reset_username", "auditor")

    assert browser_sign_in(client, "auditor", "pw-auditor").status_code == 302


def test_names_that_are_no_accounts_are_kept_only_as_hashes(cast):
    typed = "correct-horse-battery-staple"  # a password typed into the user-name field
    client = Client()

    fail_until_locked(lambda password: browser_sign_in(client, typed, password))

    assert browser_sign_in(client, typed, "anything").status_code == 429
    [attempt] = AccessAttempt.objects.all()
    assert attempt.username.startswith("hmac:")
    assert typed not in database_dump()
    [lockout] = events("auth.locked_out")
    assert lockout.target_id == attempt.username and lockout.data["known_user"] is False


def test_one_time_codes_are_not_kept_with_the_failures(cast):
    client = Client()
    client.post("/login/", {"username": "auditor", "password": "wrong", "otp_token": "493817"})

    [attempt] = AccessAttempt.objects.all()
    assert "493817" not in attempt.post_data and "wrong" not in attempt.post_data
