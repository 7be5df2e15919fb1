"""The legal approver's pages: the inbox, the decision page with the digest and re-authentication,
and the approver's past decisions. The decision rules are the service's (invariants 1–4); these
tests check that the pages ask for a fresh re-authentication, carry the digest the approver read,
and answer refusals with the reason."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from approvals.models import AccessRequest, Decision, RequestState
from jitaccess.accounts.reauth import REAUTH_SESSION_KEY
from jitaccess.audit.models import Outcome
from tests.conftest import approve_through, make_user, submit
from tests.web.conftest import by_id, elements, link, recorded, signed_in, text_of
from tests.web.test_requester_pages import field_errors, never_cached

pytestmark = pytest.mark.django_db


def reauthenticated(user: Any, *, seconds_ago: float = 0) -> Client:
    client = signed_in(user)
    session = client.session
    session[REAUTH_SESSION_KEY] = {"user": user.pk, "at": time.time() - seconds_ago}
    session.save()
    return client


def decision_form(request: AccessRequest, decision: str = "approve", **overrides: Any) -> dict[str, Any]:
    data = {
        "decision": decision,
        "comment": "Checked the ticket",
        "stage": request.current_stage,
        "digest": request.digest,
    }
    data.update(overrides)
    return data


# --- the inbox ----------------------------------------------------------------------------------


def test_the_inbox_lists_what_awaits_the_approver_oldest_first_with_everything_to_decide(cast, entitlement):
    first = submit(cast["requester"], entitlement, justification="First: mailbox export")
    second = submit(cast["admin2"], entitlement, ticket="INC-7")

    response = signed_in(cast["legal1a"]).get("/approvals/")

    assert response.status_code == 200 and never_cached(response)
    titles = [text_of(h) for h in elements(response, "h2") if "card__title" in h.attrs.get("class", "")]
    assert titles == [f"Request #{first.pk}: DKM test", f"Request #{second.pk}: DKM test"]
    page = response.content.decode()
    assert "First: mailbox export" in page and "INC-7" in page and "1 h" in page
    assert link(response, f"Request #{first.pk}: DKM test") == f"/approvals/{first.pk}/"


def test_the_second_stage_inbox_shows_what_the_first_stage_decided(cast, pending):
    approve_through(pending, cast["legal1a"])

    response = signed_in(cast["legal2"]).get("/approvals/")

    assert "Stage 1 (Legal review): legal1a approved" in " ".join(response.content.decode().split())


def test_an_empty_inbox_explains_itself(cast, entitlement):
    response = signed_in(cast["legal2"]).get("/approvals/")

    assert "Nothing is waiting for you" in response.content.decode()


def test_the_requester_never_sees_their_own_request_in_an_inbox(cast, entitlement):
    both = make_user("both", "datacenter-admins", "legal-l1")
    submit(both, entitlement)

    response = signed_in(both).get("/approvals/")

    assert "Nothing is waiting for you" in response.content.decode()


# --- deciding -----------------------------------------------------------------------------------


def test_the_decision_page_shows_the_digest_being_signed(cast, pending):
    response = signed_in(cast["legal1a"]).get(f"/approvals/{pending.pk}/")

    assert response.status_code == 200 and never_cached(response)
    assert text_of(by_id(response, "digest")) == pending.digest
    hidden = {e.attrs["name"]: e.attrs.get("value") for e in elements(response, "input", type="hidden")}
    assert hidden["digest"] == pending.digest and hidden["stage"] == "1"
    assert "you will be asked for your password" in response.content.decode()


def test_deciding_without_a_fresh_reauthentication_goes_there_first_and_keeps_the_comment(cast, pending):
    approver = signed_in(cast["legal1a"])

    response = approver.post(f"/approvals/{pending.pk}/", decision_form(pending, comment="Looks right"))

    assert response.status_code == 302
    assert response["Location"] == f"/account/reauth/?next=%2Fapprovals%2F{pending.pk}%2F"
    assert not Decision.objects.exists()
    back = approver.get(f"/approvals/{pending.pk}/")
    assert elements(back, "textarea", name="comment")[0].text.strip() == "Looks right"


def test_a_stale_reauthentication_is_not_enough(cast, pending, settings):
    approver = reauthenticated(cast["legal1a"], seconds_ago=settings.JIT_REAUTH_SECONDS + 5)

    response = approver.post(f"/approvals/{pending.pk}/", decision_form(pending))

    assert response.status_code == 302 and response["Location"].startswith("/account/reauth/")
    assert not Decision.objects.exists()


def test_a_fresh_approval_records_the_digest_and_opens_the_next_stage(cast, pending):
    approver = reauthenticated(cast["legal1a"])

    response = approver.post(f"/approvals/{pending.pk}/", decision_form(pending))

    assert response.status_code == 302 and response["Location"] == "/approvals/"
    decision = Decision.objects.get()
    assert (decision.approver, decision.digest, decision.comment) == (
        cast["legal1a"],
        pending.digest,
        "Checked the ticket",
    )
    pending.refresh_from_db()
    assert pending.current_stage == 2
    assert "You approved stage 1" in approver.get("/approvals/").content.decode()


def test_the_final_approval_issues_the_grant(cast, pending):
    approve_through(pending, cast["legal1a"])
    pending.refresh_from_db()

    reauthenticated(cast["legal2"]).post(f"/approvals/{pending.pk}/", decision_form(pending))

    pending.refresh_from_db()
    assert pending.state == RequestState.APPROVED and pending.grant.user == cast["requester"]


def test_denying_needs_a_comment_beside_the_comment_field(cast, pending):
    response = reauthenticated(cast["legal1a"]).post(
        f"/approvals/{pending.pk}/", decision_form(pending, "deny", comment="")
    )

    assert response.status_code == 400
    assert field_errors(response, "comment") == ["A comment is required to deny a request."]
    assert not Decision.objects.exists()


def test_a_changed_request_is_refused_with_the_reason_on_the_page(cast, pending):
    response = reauthenticated(cast["legal1a"]).post(
        f"/approvals/{pending.pk}/", decision_form(pending, digest="0" * 64)
    )

    assert response.status_code == 409
    assert "The request changed from the version you reviewed." in response.content.decode()
    assert [e.action for e in recorded("decision.refused.digest_mismatch")] == ["decision.refused.digest_mismatch"]


def test_self_approval_is_the_403_page_with_the_reason_and_is_audited(cast, entitlement):
    both = make_user("both", "datacenter-admins", "legal-l1")
    own = submit(both, entitlement)
    client = reauthenticated(both)

    page = client.get(f"/approvals/{own.pk}/")
    response = client.post(f"/approvals/{own.pk}/", decision_form(own))

    assert page.status_code == 403 and "You cannot decide your own request." in page.content.decode()
    assert response.status_code == 403 and "You cannot decide your own request." in response.content.decode()
    assert [e.outcome for e in recorded("decision.refused.self_approval")] == [Outcome.DENIED]
    assert not Decision.objects.exists()


def test_the_first_approver_cannot_decide_the_second_stage(cast, pending):
    cast["legal1a"].groups.add(Group.objects.get(name="legal-l2"))
    approve_through(pending, cast["legal1a"])
    pending.refresh_from_db()

    response = reauthenticated(cast["legal1a"]).post(f"/approvals/{pending.pk}/", decision_form(pending))

    assert response.status_code == 403
    assert "You have already decided a stage of this request." in response.content.decode()
    assert len(recorded("decision.refused.already_decided")) == 1


def test_a_decided_request_says_there_is_nothing_left_to_decide(cast, granted):
    # legal1b is in the first stage's group; the request is approved, so nothing is open.
    response = signed_in(cast["legal1b"]).get(f"/approvals/{granted.pk}/")

    assert response.status_code == 200
    assert "There is nothing to decide on this request any more." in response.content.decode()
    assert not elements(response, "button", name="decision")


def test_an_approver_cannot_open_a_request_outside_their_groups(cast, pending):
    outsider = Group.objects.create(name="legal-other")
    someone = make_user("someone")
    someone.groups.add(outsider)

    assert signed_in(someone).get(f"/approvals/{pending.pk}/").status_code == 404


def test_decisions_need_the_csrf_token(cast, pending):
    client = Client(enforce_csrf_checks=True)
    client.force_login(cast["legal1a"])

    assert client.post(f"/approvals/{pending.pk}/", decision_form(pending)).status_code == 403
    assert not Decision.objects.exists()


# --- past decisions -----------------------------------------------------------------------------


def test_past_decisions_list_what_the_approver_signed(cast, granted):
    response = signed_in(cast["legal1a"]).get("/approvals/decided/")

    rows = [[text_of(td) for td in tr.children if td.tag == "td"] for tr in elements(response, "tr")][1:]
    assert len(rows) == 1 and rows[0][3] == "1" and rows[0][4] == "Approve"
    assert link(response, f"#{granted.pk}") == f"/requests/{granted.pk}/"
