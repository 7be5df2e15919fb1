"""A group may require an authenticator app: until its members set one up, every browser page
leads to the set-up page and the API refuses them (their session, their tokens, new tokens)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.test import APIClient

from jitaccess.accounts.models import ApiToken, GroupSecondFactorPolicy
from jitaccess.accounts.selectors import second_factor_required
from tests.accounts.conftest import code_for, events, signed_in

TWO_FACTOR = "/account/two-factor/"
TOKEN_URL = "/api/v1/auth/token/"
PROBE = "/api/v1/requests/"


@pytest.fixture
def required(cast: dict[str, Any]) -> GroupSecondFactorPolicy:
    return GroupSecondFactorPolicy.objects.create(group=Group.objects.get(name="legal-l1"), require_totp=True)


def test_the_selector_follows_the_groups_policies(cast, required):
    assert second_factor_required(cast["legal1a"]) and second_factor_required(cast["legal1b"])
    assert not second_factor_required(cast["legal2"])
    assert not second_factor_required(cast["outsider"])
    required.require_totp = False
    required.save()
    assert not second_factor_required(cast["legal1a"])


@pytest.mark.parametrize("page", ["/", "/account/", "/audit/", "/admin/", "/login/"])
def test_every_page_leads_a_member_without_the_app_to_the_set_up(cast, required, page):
    response = signed_in(cast["legal1a"]).get(page)

    assert response.status_code == 302
    assert response["Location"] == f"{TWO_FACTOR}?next={page.replace('/', '%2F')}"


def test_a_form_sent_by_a_member_without_the_app_goes_to_the_set_up_too(cast, required):
    response = signed_in(cast["legal1a"]).post("/requests/new/", {"justification": "x"})

    assert response.status_code == 302 and response["Location"] == TWO_FACTOR


def test_the_set_up_page_sign_out_and_the_probes_stay_open(cast, required):
    client = signed_in(cast["legal1a"])

    page = client.get(TWO_FACTOR)
    assert page.status_code == 200
    assert b"only page open to you" in page.content
    assert client.get("/healthz").status_code == 200
    assert not client.get("/static/css/app.css").get("Location", "").startswith(TWO_FACTOR)
    signed_out = client.post("/logout/")
    assert signed_out.status_code == 302 and signed_out["Location"] == "/login/"


def test_members_of_other_groups_and_anonymous_visitors_are_not_concerned(cast, required):
    assert signed_in(cast["legal2"]).get("/account/").status_code == 200
    assert Client().get("/account/")["Location"] == "/login/?next=/account/"


def test_the_api_refuses_the_session_of_a_member_without_the_app(cast, required):
    client = APIClient()
    client.force_login(cast["legal1a"])

    response = client.get(PROBE)

    assert response.status_code == 403
    assert "/account/two-factor/" in response.json()["detail"]


def test_the_token_endpoint_refuses_a_member_without_the_app_and_says_why(cast, required):
    response = APIClient().post(TOKEN_URL, {"username": "legal1a", "password": "pw-legal1a"}, format="json")

    assert response.status_code == 403
    assert response.json()["detail"].startswith("Your groups require an authenticator app (TOTP)")
    assert "/account/two-factor/" in response.json()["detail"]
    assert not ApiToken.objects.exists()
    assert [e.data["reason"] for e in events("auth.login_failed")] == ["second_factor_not_set_up"]
    # A wrong password learns nothing about the requirement.
    wrong = APIClient().post(TOKEN_URL, {"username": "legal1a", "password": "wrong"}, format="json")
    assert wrong.status_code == 401


def test_a_token_issued_before_the_requirement_stops_working(cast):
    token = APIClient().post(TOKEN_URL, {"username": "legal1a", "password": "pw-legal1a"}, format="json")
    bearer = APIClient()
    bearer.credentials(HTTP_AUTHORIZATION=f"Bearer {token.json()['token']}")
    assert bearer.get(PROBE).status_code == 200

    GroupSecondFactorPolicy.objects.create(group=Group.objects.get(name="legal-l1"))

    response = bearer.get(PROBE)
    assert response.status_code == 403
    assert "/account/two-factor/" in response.json()["detail"]


def test_once_the_app_is_set_up_everything_opens_again(cast, required):
    client = signed_in(cast["legal1a"])
    assert client.get("/account/").status_code == 302
    client.get(TWO_FACTOR + "?next=/account/")
    device = TOTPDevice.objects.get(user=cast["legal1a"], confirmed=False)

    enrolled = client.post(TWO_FACTOR, {"confirm-code": code_for(device), "next": "/account/"})

    assert enrolled.status_code == 302 and enrolled["Location"] == "/account/"
    assert client.get("/account/").status_code == 200
    assert client.get(PROBE).status_code == 200
    # Tokens come with the code now, as for every device owner.
    without_code = APIClient().post(TOKEN_URL, {"username": "legal1a", "password": "pw-legal1a"}, format="json")
    assert without_code.status_code == 401
    with_code = APIClient().post(
        TOKEN_URL,
        {"username": "legal1a", "password": "pw-legal1a", "otp": code_for(device, steps_ahead=1)},
        format="json",
    )
    assert with_code.status_code == 201, with_code.json()


def test_security_admins_edit_the_policies_in_the_admin_and_the_change_is_audited(cast):
    admin = cast["secadmin"]
    admin.is_staff = True
    admin.save()
    group = Group.objects.get(name="legal-l2")
    client = signed_in(admin)

    response = client.post("/admin/accounts/groupsecondfactorpolicy/add/", {"group": group.pk, "require_totp": "on"})

    assert response.status_code == 302, response.content
    policy = GroupSecondFactorPolicy.objects.get(group=group)
    assert policy.require_totp
    [event] = [e for e in events("config.changed") if e.target_type == "accounts.groupsecondfactorpolicy"]
    assert (event.actor_name, event.target_id, event.data["change"]) == ("secadmin", str(policy.pk), "create")
    # Auditors may look, not edit.
    auditor = cast["auditor"]
    auditor.is_staff = True
    auditor.save()
    looking = signed_in(auditor)
    assert looking.get(f"/admin/accounts/groupsecondfactorpolicy/{policy.pk}/change/").status_code == 200
    assert looking.post("/admin/accounts/groupsecondfactorpolicy/add/", {"group": group.pk}).status_code == 403
