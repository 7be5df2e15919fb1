"""Where a fresh re-authentication is asked for, and where it may not be skipped: a decision that
may still land (page and API alike), ending someone else's grant, rotating a key ring with a browser
session, and the first set-up of an authenticator app. Also the session's fixed end."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from approvals.models import Decision, GrantState
from jitaccess.accounts.reauth import REAUTH_SESSION_KEY
from tests.conftest import make_user, submit
from tests.web.conftest import elements, recorded, signed_in

pytestmark = pytest.mark.django_db


def stamp(client: Client, user: Any) -> Client:
    session = client.session
    session[REAUTH_SESSION_KEY] = {"user": user.pk, "at": time.time()}
    session.save()
    return client


def csrf_client(user: Any) -> Client:
    """A browser session that sends its CSRF token, as the pages' scripts and forms do."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    client.get("/access/")  # sets the CSRF cookie
    return client


def api_post(client: Client, path: str, data: dict[str, Any]) -> Any:
    token = client.cookies["csrftoken"].value
    return client.post(path, data, content_type="application/json", HTTP_X_CSRFTOKEN=token)


# --- deciding -----------------------------------------------------------------------------------


def test_a_refusal_that_can_still_lift_does_not_skip_the_reauthentication(cast, pending):
    # legal2 may not decide stage 1, but stage 2 is theirs: once stage 1 completes, the same
    # POST would land. So it is not refused at once; it goes to re-authenticate first.
    response = signed_in(cast["legal2"]).post(
        f"/approvals/{pending.pk}/", {"decision": "approve", "stage": 2, "digest": pending.digest}
    )

    assert response.status_code == 302 and response["Location"].startswith("/account/reauth/")
    assert not recorded("decision.refused.not_in_stage_group")


def test_a_refusal_that_can_never_lift_is_refused_and_audited_at_once(cast, pending):
    response = signed_in(cast["auditor"]).post(
        f"/approvals/{pending.pk}/", {"decision": "approve", "stage": 1, "digest": pending.digest}
    )

    assert response.status_code == 403
    assert "Only members of legal-l1 may decide the open stage." in response.content.decode()
    assert len(recorded("decision.refused.not_in_stage_group")) == 1


def test_a_browser_session_on_the_api_needs_the_same_reauthentication(cast, pending):
    client = csrf_client(cast["legal1a"])
    body = {"comment": "ok", "stage": 1, "digest": pending.digest}

    refused = api_post(client, f"/api/v1/requests/{pending.pk}/approve/", body)
    assert refused.status_code == 403 and "re-authenticate" in refused.json()["detail"]
    assert not Decision.objects.exists()

    landed = api_post(stamp(client, cast["legal1a"]), f"/api/v1/requests/{pending.pk}/approve/", body)
    assert landed.status_code == 200 and Decision.objects.count() == 1


def test_a_personal_token_needs_no_browser_reauthentication(cast, pending, api):
    from jitaccess.accounts.services import api_token_create

    token, _ = api_token_create(user=cast["legal1a"])
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    response = api.post(f"/api/v1/requests/{pending.pk}/approve/", {"comment": "ok", "stage": 1}, format="json")

    assert response.status_code == 200


# --- grants and keys ----------------------------------------------------------------------------


def test_a_security_admin_ends_someone_elses_grant_only_on_the_reauthenticated_page(cast, granted):
    grant = granted.grant
    admin = signed_in(cast["secadmin"])

    page = admin.get(f"/grants/{grant.pk}/")
    refused = admin.post(f"/grants/{grant.pk}/revoke/", {"reason": "no"})

    assert page.status_code == 200
    assert not [f for f in elements(page, "form") if f.attrs.get("action", "").endswith("/revoke/")]
    assert refused.status_code == 404
    grant.refresh_from_db()
    assert grant.state == GrantState.ACTIVE


def test_revoking_someone_elses_grant_through_the_api_with_a_session_needs_reauthentication(cast, granted):
    grant = granted.grant
    client = csrf_client(cast["secadmin"])

    refused = api_post(client, f"/api/v1/grants/{grant.pk}/revoke/", {"reason": "incident"})
    grant.refresh_from_db()
    assert refused.status_code == 403 and grant.state == GrantState.ACTIVE

    landed = api_post(stamp(client, cast["secadmin"]), f"/api/v1/grants/{grant.pk}/revoke/", {"reason": "incident"})
    grant.refresh_from_db()
    assert landed.status_code == 200 and grant.state == GrantState.REVOKED


def test_the_holder_ends_their_own_grant_through_the_api_without_a_detour(cast, granted):
    client = csrf_client(cast["requester"])

    response = api_post(client, f"/api/v1/grants/{granted.grant.pk}/revoke/", {"reason": "done"})

    assert response.status_code == 200


def test_rotating_a_key_ring_with_a_browser_session_needs_reauthentication(cast, entitlement, security_group):
    from keys import services as key_services

    ring = key_services.keyring_create(name="ring-gate", security_group=security_group, acting_user=None)
    client = csrf_client(cast["secadmin"])

    refused = api_post(client, f"/api/v1/keyrings/{ring.name}/rotate/", {})
    assert refused.status_code == 403 and ring.versions.count() == 1

    landed = api_post(stamp(client, cast["secadmin"]), f"/api/v1/keyrings/{ring.name}/rotate/", {})
    assert landed.status_code == 200 and ring.versions.count() == 2


# --- the first authenticator set-up -------------------------------------------------------------


def test_a_first_authenticator_set_up_asks_for_the_password_before_showing_a_key(cast):
    client = signed_in(cast["requester"])

    response = client.get("/account/two-factor/")

    assert response.status_code == 302
    assert response["Location"] == "/account/reauth/?next=%2Faccount%2Ftwo-factor%2F"
    assert not TOTPDevice.objects.filter(user=cast["requester"]).exists()
    shown = stamp(client, cast["requester"]).get("/account/two-factor/")
    assert shown.status_code == 200 and TOTPDevice.objects.filter(user=cast["requester"], confirmed=False).count() == 1


def test_a_member_of_a_group_that_requires_the_app_can_reach_the_reauthentication(cast):
    from jitaccess.accounts.models import GroupSecondFactorPolicy

    GroupSecondFactorPolicy.objects.create(group=Group.objects.get(name="legal-l1"), require_totp=True)
    client = signed_in(cast["legal1a"])

    assert client.get("/approvals/")["Location"].startswith("/account/two-factor/")
    assert client.get("/account/two-factor/")["Location"].startswith("/account/reauth/")
    assert client.get("/account/reauth/?next=/account/two-factor/").status_code == 200


# --- the session's fixed end --------------------------------------------------------------------


def test_a_session_has_a_fixed_end_that_activity_does_not_move(cast, settings):
    client = Client()
    signed = client.post("/login/", {"username": "requester", "password": "pw-requester"})
    assert signed.status_code == 302
    end = client.session.get_expiry_date()
    assert abs((end - timezone.now()).total_seconds() - settings.SESSION_COOKIE_AGE) < 5

    time.sleep(1.1)
    stamp(client, cast["requester"])  # any write to the session, as the idle timeout makes
    client.get("/access/")

    assert client.session.get_expiry_date() == end


def test_an_approver_outside_every_stage_is_told_at_once(cast, entitlement):
    outsider = make_user("outsider-approver")
    outsider.groups.add(Group.objects.get(name="datacenter-admins"))
    own = submit(cast["requester"], entitlement)

    # Not in any of the request's approver groups, and not its requester: the page is not theirs.
    assert signed_in(outsider).get(f"/approvals/{own.pk}/").status_code == 404
