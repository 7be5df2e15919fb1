"""Sign-in help for security admins (/security/people/): the locked sign-ins, unlocking one, and
resetting a lost authenticator app. Security admins only, after a recent re-authentication, with a
reason, each act one audit event; nobody resets their own authenticator."""

from __future__ import annotations

from typing import Any

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from jitaccess.accounts.recovery import second_factor_reset, signin_unlock
from jitaccess.audit.models import AuditEvent
from jitaccess.errors import InvalidInput, NotAllowed
from tests.accounts.conftest import signed_in as signed_in_with_device
from tests.web.conftest import elements, recorded, signed_in, table_rows, text_of
from tests.web.test_security_pages import error_beside, reauth_page, reauthenticated

pytestmark = pytest.mark.django_db

PAGE = "/security/people/"


def lock_out(username: str) -> Client:
    """Fail the browser sign-in until it locks, as a person mistyping their password would."""
    client = Client()
    codes = [
        client.post("/login/", {"username": username, "password": "wrong"}).status_code
        for _ in range(settings.AXES_FAILURE_LIMIT)
    ]
    assert codes[-1] == 429
    return client


def signs_in(username: str) -> bool:
    client = Client()
    client.post("/login/", {"username": username, "password": f"pw-{username}"})
    return "_auth_user_id" in client.session


def device_of(user: Any) -> TOTPDevice:
    return TOTPDevice.objects.create(user=user, name="phone", confirmed=True)


@pytest.fixture
def secadmin(cast: dict[str, Any]) -> Client:
    return reauthenticated(cast["secadmin"])


def test_a_locked_sign_in_is_listed_and_unlocking_lets_them_in(cast: dict[str, Any], secadmin: Client) -> None:
    lock_out("auditor")
    assert not signs_in("auditor")  # even the right password, while locked

    page = secadmin.get(PAGE)
    [row] = table_rows(page, "Locked sign-ins")
    assert row[0] == "auditor" and row[2] == str(settings.AXES_FAILURE_LIMIT)

    response = secadmin.post(
        PAGE, {"action": "unlock", "unlock-username": "auditor", "unlock-reason": "Called the desk, ticket 88"}
    )
    assert response.status_code == 302 and response["Location"] == PAGE
    assert not AccessAttempt.objects.filter(username="auditor").exists()
    assert signs_in("auditor")
    [event] = recorded("auth.unlocked")
    assert (event.actor_id, event.target_id) == (cast["secadmin"].pk, "auditor")
    assert event.data == {"reason": "Called the desk, ticket 88", "records_cleared": 1}
    assert table_rows(secadmin.get(PAGE), "Locked sign-ins") == [["No sign-in is locked now."]]


def test_names_of_no_account_are_not_listed(secadmin: Client) -> None:
    lock_out("nobody-by-this-name")
    assert AccessAttempt.objects.count() == 1  # kept as a keyed hash, not as typed
    assert table_rows(secadmin.get(PAGE), "Locked sign-ins") == [["No sign-in is locked now."]]


def test_resetting_a_lost_authenticator(cast: dict[str, Any], secadmin: Client) -> None:
    device_of(cast["legal2"])
    response = secadmin.post(PAGE, {"action": "reset", "reset-username": "legal2", "reset-reason": "Phone lost"})
    assert response.status_code == 302
    assert not TOTPDevice.objects.filter(user=cast["legal2"]).exists()
    [event] = recorded("auth.second_factor_reset")
    assert event.target_id == "legal2" and event.data == {"reason": "Phone lost", "devices_removed": 1}
    # With no app, the password alone signs them in; the set-up follows where a group requires it.
    assert signs_in("legal2")


def test_nobody_resets_their_own_authenticator(cast: dict[str, Any]) -> None:
    secadmin = signed_in_with_device(cast["secadmin"], device_of(cast["secadmin"]))
    response = secadmin.post(PAGE, {"action": "reset", "reset-username": "secadmin", "reset-reason": "mine"})
    assert response.status_code == 403
    assert "Another security admin must reset your own authenticator app." in response.content.decode()
    assert TOTPDevice.objects.filter(user=cast["secadmin"]).exists()
    assert recorded("auth.second_factor_reset") == []


@pytest.mark.parametrize(
    "action, data, field, message",
    [
        ("unlock", {"username": "auditor", "reason": "  "}, "reason", "Say why; the reason goes into the audit trail."),
        ("unlock", {"username": "no-such-person", "reason": "x"}, "username", "No account has that user name."),
        ("reset", {"username": "", "reason": "x"}, "username", "This field is required."),
        ("reset", {"username": "legal1a", "reason": "x"}, "username", "legal1a has no authenticator app to reset."),
    ],
)
def test_bad_input_is_shown_beside_its_field_and_changes_nothing(
    cast: dict[str, Any], secadmin: Client, action: str, data: dict[str, str], field: str, message: str
) -> None:
    before = AuditEvent.objects.count()
    response = secadmin.post(PAGE, {"action": action, **{f"{action}-{k}": v for k, v in data.items()}})
    assert response.status_code == 400
    assert error_beside(response, f"id_{action}-{field}") == message
    assert AuditEvent.objects.count() == before


def test_an_unknown_action_is_a_400(secadmin: Client) -> None:
    response = secadmin.post(PAGE, {"action": "delete-everyone"})
    assert response.status_code == 400
    assert "Nothing was changed: choose unlock or reset." in response.content.decode()


def test_without_a_recent_re_authentication_it_asks_and_keeps_what_was_typed(cast: dict[str, Any]) -> None:
    lock_out("auditor")
    client = signed_in(cast["secadmin"])
    response = client.post(PAGE, {"action": "unlock", "unlock-username": "auditor", "unlock-reason": "ticket 9"})
    assert response["Location"] == reauth_page(PAGE)
    assert AccessAttempt.objects.filter(username="auditor").exists()
    back = client.get(PAGE)
    values = {e.attrs.get("name"): e.attrs.get("value") for e in elements(back, "input")}
    assert values["unlock-username"] == "auditor" and values["unlock-reason"] == "ticket 9"
    assert recorded("auth.unlocked") == []


@pytest.mark.parametrize("who", ["auditor", "legal1a", "requester"])
def test_only_security_admins(cast: dict[str, Any], who: str) -> None:
    lock_out("legal2")
    client = reauthenticated(cast[who])
    assert client.get(PAGE).status_code == 403
    response = client.post(PAGE, {"action": "unlock", "unlock-username": "legal2", "unlock-reason": "let me"})
    assert response.status_code == 403
    assert AccessAttempt.objects.filter(username="legal2").exists()
    assert recorded("auth.unlocked") == []


def test_the_services_refuse_everyone_but_security_admins(cast: dict[str, Any]) -> None:
    device_of(cast["legal2"])
    with pytest.raises(NotAllowed):
        signin_unlock(username="legal2", acting_user=cast["auditor"], reason="x")
    with pytest.raises(NotAllowed):
        second_factor_reset(username="legal2", acting_user=cast["legal1a"], reason="x")
    with pytest.raises(InvalidInput) as problem:
        second_factor_reset(username="legal2", acting_user=cast["secadmin"], reason="\x00")
    assert problem.value.field == "reason"
    assert TOTPDevice.objects.filter(user=cast["legal2"]).exists()


def test_the_lockout_page_points_to_a_real_way_back(cast: dict[str, Any], secadmin: Client) -> None:
    locked = lock_out("auditor").post("/login/", {"username": "auditor", "password": "pw-auditor"})
    assert "ask a security admin to unlock it" in locked.content.decode()
    nav = [text_of(a) for a in elements(secadmin.get(PAGE), "a")]
    assert "People" in nav


@pytest.mark.parametrize("action", ["unlock", "reset"])
def test_nothing_changes_when_the_audit_event_cannot_be_written(
    cast: dict[str, Any], monkeypatch: Any, action: str
) -> None:
    """Invariant 12: no audit event, no unlock and no reset."""
    lock_out("legal2")
    device_of(cast["legal2"])

    def refuse(self: Any, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("audit store unavailable")

    monkeypatch.setattr(AuditEvent, "save", refuse)
    service = signin_unlock if action == "unlock" else second_factor_reset
    with pytest.raises(RuntimeError):
        service(username="legal2", acting_user=cast["secadmin"], reason="ticket 12")
    assert AccessAttempt.objects.filter(username="legal2").exists()
    assert TOTPDevice.objects.filter(user=cast["legal2"]).exists()
