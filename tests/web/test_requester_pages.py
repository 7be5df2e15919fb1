"""The datacenter admin's pages: dashboard, request form, request page, withdraw, credential,
revoke and reveal. Each write goes through the services, so these tests check what the pages add:
errors beside the right field, the 403 / 404 pages, CSRF, and that secrets appear only once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client

from approvals.models import AccessRequest, Grant, GrantCredential, GrantState, RequestState
from jitaccess import clock
from jitaccess.audit.models import Outcome
from keys.models import Secret
from tests.conftest import submit
from tests.keys.conftest import make_secret
from tests.web.conftest import by_id, elements, link, recorded, signed_in, text_of

pytestmark = pytest.mark.django_db


def field_errors(response: Any, name: str) -> list[str]:
    """The error messages shown inside the field wrapper of the control named ``name``."""
    wrappers = [
        e
        for e in elements(response, "div")
        if "field" in e.attrs.get("class", "").split()
        and any(child.attrs.get("name") == name for child in _descendants(e))
    ]
    assert len(wrappers) == 1, name
    return [text_of(li) for li in _descendants(wrappers[0]) if li.tag == "li"]


def _descendants(element: Any) -> list[Any]:
    found = []
    for child in element.children:
        found.append(child)
        found.extend(_descendants(child))
    return found


def never_cached(response: Any) -> bool:
    return "no-store" in response.get("Cache-Control", "")


def request_form(**overrides: Any) -> dict[str, Any]:
    data = {
        "entitlement": "dkm-test",
        "purpose": "debugging",
        "justification": "Mail sync for tenant 42 fails since 09:00",
        "ticket": "INC-2001",
        "duration_minutes": "90",
    }
    data.update(overrides)
    return data


@pytest.fixture
def requester(cast: dict[str, Any]) -> Client:
    return signed_in(cast["requester"])


# --- dashboard ----------------------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_sign_in(db):
    for path in ("/access/", "/requests/new/", "/requests/1/", "/grants/1/", "/approvals/"):
        response = Client().get(path)
        assert response.status_code == 302 and response["Location"] == f"/login/?next={path}"


def test_an_empty_dashboard_says_what_to_do(requester, entitlement):
    response = requester.get("/access/")

    assert response.status_code == 200 and never_cached(response)
    assert "You hold no active grant" in response.content.decode()
    assert link(response, "Request access") == "/requests/new/"


def test_the_dashboard_shows_the_active_grant_with_its_countdown(requester, granted):
    grant = granted.grant

    response = requester.get("/access/")

    countdowns = [e for e in elements(response, "p") if "data-countdown" in e.attrs]
    assert [c.attrs["data-countdown"] for c in countdowns] == [grant.expires_at.isoformat()]
    assert link(response, f"#{granted.pk}") == f"/requests/{granted.pk}/"
    assert link(response, f"grant #{grant.pk}") == f"/grants/{grant.pk}/"


# --- the request form ---------------------------------------------------------------------------


def test_the_form_lists_only_what_the_person_may_request_with_the_policy(requester, entitlement):
    response = requester.get("/requests/new/?entitlement=dkm-test")

    options = [o.attrs.get("value") for o in elements(response, "option") if o.attrs.get("value")]
    assert "dkm-test" in options
    selected = [o for o in elements(response, "option", value="dkm-test") if "selected" in o.attrs]
    assert selected, "the entitlement named in the link is preselected"
    policy = by_id(response, "policy-dkm-test")
    assert "8 h" in text_of(policy) and "Legal review" in text_of(policy)


def test_submitting_creates_the_request_and_opens_its_page(requester, cast, entitlement):
    response = requester.post("/requests/new/", request_form())

    created = AccessRequest.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/requests/{created.pk}/"
    assert created.duration_seconds == 90 * 60 and created.requester == cast["requester"]
    assert [e.target_id for e in recorded("request.submitted")] == [str(created.pk)]
    page = requester.get(response["Location"])
    assert "Waiting for stage 1 of 2" in page.content.decode()


def test_an_empty_duration_takes_the_policy_default(requester, entitlement):
    requester.post("/requests/new/", request_form(duration_minutes=""))

    assert AccessRequest.objects.get().duration_seconds == entitlement.default_duration_seconds


@pytest.mark.parametrize(
    "overrides, field, message",
    [
        ({"justification": "  "}, "justification", "This field is required."),
        ({"ticket": ""}, "ticket", "This entitlement requires a ticket reference."),
        ({"duration_minutes": "481"}, "duration_minutes", "at most 28800 seconds"),
        ({"duration_minutes": "0"}, "duration_minutes", "greater than or equal to 1"),
        ({"duration_minutes": "ninety"}, "duration_minutes", "Enter a whole number."),
        ({"purpose": "shopping"}, "purpose", "Select a valid choice."),
        ({"entitlement": "nope"}, "entitlement", "Select a valid choice."),
    ],
)
def test_bad_input_is_shown_beside_its_field_and_nothing_is_written(requester, entitlement, overrides, field, message):
    response = requester.post("/requests/new/", request_form(**overrides))

    assert response.status_code == 400
    assert any(message in error for error in field_errors(response, field)), field_errors(response, field)
    assert not AccessRequest.objects.exists()
    # What was typed is kept, so nothing has to be typed again.
    assert (
        elements(response, "textarea", name="justification")[0].text.strip()
        == request_form(**overrides)["justification"].strip()
    )


def test_someone_outside_the_requester_group_cannot_pick_the_entitlement(cast, entitlement):
    approver = signed_in(cast["legal1a"])

    page = approver.get("/requests/new/")
    response = approver.post("/requests/new/", request_form())

    assert "nothing you can request" in page.content.decode()
    assert response.status_code == 400 and not AccessRequest.objects.exists()


def test_the_form_needs_its_csrf_token(cast, entitlement):
    client = Client(enforce_csrf_checks=True)
    client.force_login(cast["requester"])

    assert client.post("/requests/new/", request_form()).status_code == 403
    assert not AccessRequest.objects.exists()


# --- the request page and withdrawing -----------------------------------------------------------


def test_the_request_page_shows_each_stage(requester, pending):
    response = requester.get(f"/requests/{pending.pk}/")

    steps = [text_of(li) for li in elements(response, "li") if "progress__step" in li.attrs.get("class", "")]
    assert steps[0].startswith("Stage 1: Legal review open") and steps[1].startswith("Stage 2: Legal sign-off waiting")
    assert steps[2] == "Grant not yet"


def test_the_requester_withdraws_a_pending_request(requester, pending):
    response = requester.post(f"/requests/{pending.pk}/withdraw/")

    assert response.status_code == 302
    pending.refresh_from_db()
    assert pending.state == RequestState.WITHDRAWN
    assert "withdrawn" in requester.get(response["Location"]).content.decode()


def test_an_approver_who_may_see_a_request_may_not_withdraw_it(cast, pending):
    response = signed_in(cast["legal1a"]).post(f"/requests/{pending.pk}/withdraw/")

    assert response.status_code == 403
    assert "Only the requester may withdraw a request." in response.content.decode()
    assert [e.outcome for e in recorded("request.withdraw_refused")] == [Outcome.DENIED]


def test_someone_elses_request_is_not_found(cast, pending):
    assert signed_in(cast["admin2"]).get(f"/requests/{pending.pk}/").status_code == 404
    assert signed_in(cast["admin2"]).post(f"/requests/{pending.pk}/withdraw/").status_code == 404
    assert signed_in(cast["requester"]).get("/requests/99999999999999999999/").status_code == 404


# --- the grant: credential, revoke --------------------------------------------------------------


def test_the_credential_is_shown_once_and_only_its_hash_is_kept(requester, granted):
    grant = granted.grant

    response = requester.post(f"/grants/{grant.pk}/credential/")

    assert response.status_code == 200 and never_cached(response)
    token = elements(response, "input", id="minted-credential")[0].attrs["value"]
    assert token.startswith("jitg_")
    credential = GrantCredential.objects.get(grant=grant)
    assert credential.token_hash != token and token not in requester.get(f"/grants/{grant.pk}/").content.decode()
    # A second mint is refused with a message, not an error page.
    again = requester.post(f"/grants/{grant.pk}/credential/", follow=True)
    assert "already minted" in again.content.decode()


def test_revoking_early_needs_a_reason(requester, granted):
    grant = granted.grant

    response = requester.post(f"/grants/{grant.pk}/revoke/", {"reason": ""})

    assert response.status_code == 400
    assert field_errors(response, "reason") == ["This field is required."]
    grant.refresh_from_db()
    assert grant.state == GrantState.ACTIVE


def test_revoking_ends_the_grant_and_says_so(requester, granted):
    grant = granted.grant

    response = requester.post(f"/grants/{grant.pk}/revoke/", {"reason": "Done early"}, follow=True)

    grant.refresh_from_db()
    assert grant.state == GrantState.REVOKED and grant.end_reason == "Done early"
    assert "revoked" in response.content.decode() and "This grant has ended" in response.content.decode()
    assert [e.data.get("reason") for e in recorded("grant.revoked")] == ["Done early"]


def test_a_grant_of_someone_else_is_not_found(cast, granted):
    path = f"/grants/{granted.grant.pk}/"
    assert signed_in(cast["admin2"]).get(path).status_code == 404
    assert signed_in(cast["admin2"]).post(path + "credential/").status_code == 404


# --- reveal -------------------------------------------------------------------------------------


@pytest.fixture
def ring_secret(cast, granted) -> Secret:
    from keys import services as key_services

    ring = key_services.keyring_create(name="ring-web", security_group=granted.security_group, acting_user=None)
    return make_secret(ring, cast["secadmin"], value="pa55-VALUE-marker")


def test_the_grant_page_lists_the_secrets_with_a_reveal_form_but_no_value(requester, granted, ring_secret):
    response = requester.get(f"/grants/{granted.grant.pk}/")

    assert "pa55-VALUE-marker" not in response.content.decode()
    forms = [f for f in elements(response, "form") if f.attrs.get("action", "").endswith("/reveal/")]
    assert [f.attrs["action"] for f in forms] == [f"/grants/{granted.grant.pk}/secrets/{ring_secret.pk}/reveal/"]


def test_reveal_shows_the_value_once_never_cached_and_audited(requester, granted, ring_secret):
    grant = granted.grant
    path = f"/grants/{grant.pk}/secrets/{ring_secret.pk}/reveal/"

    response = requester.post(path, {f"secret-{ring_secret.pk}-reason": "INC-2001 mailbox check"})

    assert response.status_code == 200 and never_cached(response)
    assert text_of(by_id(response, "secret-value")) == "pa55-VALUE-marker"
    hider = [e for e in elements(response, "span") if "data-hides-secret" in e.attrs]
    assert hider and hider[0].attrs["data-countdown"] == grant.expires_at.isoformat()
    events = recorded("secret.revealed")
    assert [(e.grant_id, e.data["reason"]) for e in events] == [(grant.pk, "INC-2001 mailbox check")]


def test_reveal_without_a_reason_is_refused_beside_the_field(requester, granted, ring_secret):
    path = f"/grants/{granted.grant.pk}/secrets/{ring_secret.pk}/reveal/"

    response = requester.post(path, {f"secret-{ring_secret.pk}-reason": ""})

    assert response.status_code == 400
    assert field_errors(response, f"secret-{ring_secret.pk}-reason") == ["This field is required."]
    assert "pa55-VALUE-marker" not in response.content.decode()


def test_reveal_after_the_grant_ended_is_refused_and_audited(requester, granted, ring_secret):
    grant = granted.grant
    now = clock.now()
    Grant.objects.filter(pk=grant.pk).update(starts_at=now - timedelta(hours=1), expires_at=now - timedelta(seconds=1))
    path = f"/grants/{grant.pk}/secrets/{ring_secret.pk}/reveal/"

    response = requester.post(path, {f"secret-{ring_secret.pk}-reason": "one more look"})

    assert response.status_code == 403
    assert "Revealing needs an active grant" in response.content.decode()
    assert "pa55-VALUE-marker" not in response.content.decode()
    # Refused, yet named with the grant whose page it came from: it is on that grant's timeline.
    assert [(e.data["refusal"], e.grant_id) for e in recorded("secret.reveal_denied")] == [("no_access", grant.pk)]
    # The grant page no longer offers anything to reveal.
    page = requester.get(f"/grants/{grant.pk}/")
    assert not [f for f in elements(page, "form") if f.attrs.get("action", "").endswith("/reveal/")]


def test_a_secret_outside_the_grant_or_a_grant_of_someone_else_is_not_found(cast, requester, granted, ring_secret):
    from approvals.models import SecurityGroup
    from keys import services as key_services

    other_group = SecurityGroup.objects.create(name="dkm-other")
    other = make_secret(
        key_services.keyring_create(name="ring-other", security_group=other_group, acting_user=None),
        cast["secadmin"],
        name="other",
    )
    grant = granted.grant
    reason = {"secret-0-reason": "x"}

    assert requester.post(f"/grants/{grant.pk}/secrets/{other.pk}/reveal/", reason).status_code == 404
    outsider = signed_in(cast["admin2"])
    assert outsider.post(f"/grants/{grant.pk}/secrets/{ring_secret.pk}/reveal/", reason).status_code == 404
    assert not recorded("secret.revealed")


def test_a_second_request_of_the_same_person_is_listed_newest_first(requester, cast, entitlement):
    first = submit(cast["requester"], entitlement)
    second = submit(cast["requester"], entitlement)

    response = requester.get("/access/")

    listed = [text_of(a) for a in elements(response, "a") if text_of(a).startswith("#")]
    assert listed == [f"#{second.pk}", f"#{first.pk}"]
