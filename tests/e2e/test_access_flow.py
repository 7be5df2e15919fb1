"""The whole access story in a real browser, each person in a browser of their own: a datacenter
admin asks for access, two legal approvers sign it off (re-authenticating, one of them with an
authenticator code), the admin mints the grant's credential and reveals a secret, the grant ends
under the open page, and an auditor finds every step in the trail; then the refusals a person
meets on these pages."""

from __future__ import annotations

import re
import secrets
import time
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import Locator, Page, Response, expect

from approvals.models import AccessRequest, Decision, Grant
from jitaccess import roles
from jitaccess.audit.models import AuditEvent
from jitaccess.web.access import SECURITY_ADMINS_ONLY
from keys.services import keyring_create
from tests.conftest import approve_through, make_user, submit
from tests.e2e.conftest import csrf_headers, screenshot, sign_in
from tests.keys.conftest import make_secret

JUSTIFICATION = "Mail sync fails for tenant 42; the stored mailbox password must be checked."
TICKET = "INC-4242"
FIRST_COMMENT = "Ticket checked: one mailbox, one tenant."
SECOND_COMMENT = "Signed off for the ticket's scope."
REVEAL_REASON = "Compare the stored password with the provider's for INC-4242"


# --- helpers --------------------------------------------------------------------------------------


def authenticator_code(user: Any) -> str:
    """What the person's authenticator app shows, for a time step the device has not accepted yet:
    a code is taken once, and signing in and re-authenticating may fall in one 30 s step."""
    device = TOTPDevice.objects.get(user=user, confirmed=True)
    base = (int(time.time()) - device.t0) // device.step
    wanted = max(base + device.drift, device.last_t + 1)
    code = totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits, drift=wanted - base)
    return f"{code:0{device.digits}d}"


def sign_in_with_code(page: Page, user: Any) -> None:
    page.goto("/login/")
    page.get_by_label("Username", exact=True).fill(user.username)
    page.get_by_label("Password", exact=True).fill(f"pw-{user.username}")
    page.get_by_label("Authenticator code", exact=True).fill(authenticator_code(user))
    page.get_by_role("button", name="Sign in").click()
    expect(page, f"signing in as {user.username} was refused").not_to_have_url(re.compile(r"/login/(\?.*)?$"))


def posted_to(path_part: str) -> Any:
    return lambda response: response.request.method == "POST" and path_part in response.url


def not_allowed(page: Page, reason: str) -> None:
    expect(page.get_by_role("heading", level=1, name="Not allowed")).to_be_visible()
    expect(page.locator("main .lead")).to_have_text(reason)


def fact(page: Page, term: str) -> Locator:
    """The description of a term in the page's first fact list that has it."""
    return (
        page.locator("dl.facts > div")
        .filter(has=page.get_by_role("term").filter(has_text=re.compile(f"^{re.escape(term)}$")))
        .first.get_by_role("definition")
    )


def column(page: Page, caption: str, heading: str) -> list[str]:
    """One column of a table, top to bottom."""
    table = page.get_by_role("table", name=caption)
    number = table.locator("thead th").all_inner_texts().index(heading) + 1
    return table.locator(f"tbody tr td:nth-child({number})").all_inner_texts()


def filter_events(page: Page, **fields: str) -> None:
    page.goto("/audit/")
    for label, value in fields.items():
        page.get_by_label(label, exact=True).fill(value)
    page.get_by_role("button", name="Apply filters").click()
    expect(page.get_by_role("heading", level=2, name="Matching events, newest first")).to_be_visible()


def decide_after_reauth(page: Page, user: Any, pk: int, stage: int, comment: str, *, shots: bool = False) -> None:
    """Open the request from the inbox, approve its stage, confirm who they are, approve again."""
    page.get_by_role("listitem").filter(has=page.get_by_role("heading", name=f"Request #{pk}: DKM test")).get_by_role(
        "link", name="Review and decide"
    ).click()
    expect(page).to_have_url(re.compile(rf"/approvals/{pk}/$"))
    expect(page.get_by_role("heading", level=2, name=f"Your decision on stage {stage} of 2")).to_be_visible()
    digest = AccessRequest.objects.get(pk=pk).digest
    expect(page.locator("#digest")).to_have_text(digest)
    has_code = TOTPDevice.objects.filter(user=user, confirmed=True).exists()
    asked = "password and authenticator code" if has_code else "password first"
    expect(page.get_by_text(f"you will be asked for your {asked}")).to_be_visible()
    if shots:
        screenshot(page, "decide")
    page.get_by_label("Comment", exact=True).fill(comment)
    page.get_by_role("button", name=f"Approve stage {stage}").click()

    # No fresh re-authentication yet: nothing is recorded, the approver confirms who they are.
    expect(page).to_have_url(re.compile(rf"/account/reauth/\?next=%2Fapprovals%2F{pk}%2F$"))
    expect(page.get_by_role("heading", level=1, name="Confirm it is you")).to_be_visible()
    assert not Decision.objects.filter(request_id=pk, approver=user).exists()
    code_field = page.get_by_label("Code from your authenticator app", exact=True)
    expect(code_field).to_have_count(1 if has_code else 0)
    if shots:
        screenshot(page, "reauth")
    page.get_by_label("Password", exact=True).fill(f"pw-{user.username}")
    if has_code:
        code_field.fill(authenticator_code(user))
    page.get_by_role("button", name="Confirm").click()

    # Back on the decision page with the comment as typed; this time the decision lands.
    expect(page).to_have_url(re.compile(rf"/approvals/{pk}/$"))
    expect(page.get_by_label("Comment", exact=True)).to_have_value(comment)
    expect(page.get_by_text("you will be asked for your")).to_have_count(0)
    page.get_by_role("button", name=f"Approve stage {stage}").click()
    expect(page).to_have_url(re.compile(r"/approvals/$"))
    expect(page.get_by_role("status")).to_contain_text(f"You approved stage {stage} of request #{pk}.")
    expect(page.get_by_text("Nothing is waiting for you.")).to_be_visible()
    decision = Decision.objects.get(request_id=pk, approver=user)
    assert (decision.stage_order, decision.decision, decision.comment, decision.digest) == (
        stage,
        "approve",
        comment,
        digest,
    )


# --- the whole story --------------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.worker
def test_an_access_request_from_submission_to_the_end_of_its_grant(new_page, cast, entitlement, celery_worker):
    marker = f"mailbox-password-{secrets.token_urlsafe(16)}"
    keyring = keyring_create(name="ring-mail", security_group=entitlement.security_group, acting_user=None)
    secret = make_secret(keyring, cast["secadmin"], name="mail-1", value=marker)
    TOTPDevice.objects.create(user=cast["legal2"], name="phone", confirmed=True)

    # The datacenter admin asks for access.
    requester = new_page()
    sign_in(requester, "requester", "pw-requester")
    expect(requester.get_by_role("heading", level=1, name="Welcome, requester")).to_be_visible()
    screenshot(requester, "home-requester")
    requester.get_by_role("link", name="Request access").click()
    expect(requester.get_by_role("heading", level=1, name="Request access")).to_be_visible()
    requester.get_by_label("Entitlement", exact=True).select_option(label="DKM test (dkm-test)")
    requester.get_by_label("Purpose", exact=True).select_option(label="Troubleshooting")
    requester.get_by_label("Justification", exact=True).fill(JUSTIFICATION)
    requester.get_by_label("Ticket", exact=True).fill(TICKET)
    requester.get_by_label("Duration (minutes)", exact=True).fill("5")
    screenshot(requester, "request-form")
    requester.get_by_role("button", name="Submit request").click()

    expect(requester).to_have_url(re.compile(r"/requests/\d+/$"))
    access_request = AccessRequest.objects.get(requester=cast["requester"])
    pk = access_request.pk
    assert (access_request.purpose, access_request.ticket, access_request.duration_seconds) == (
        "troubleshooting",
        TICKET,
        300,
    )
    expect(requester.get_by_role("heading", level=1, name=f"Request #{pk}: DKM test")).to_be_visible()
    expect(requester.get_by_role("status")).to_contain_text(f"Request #{pk} submitted")
    open_step = requester.get_by_role("list", name="Approval progress").locator("[aria-current=step]")
    expect(open_step).to_contain_text("Stage 1: Legal review")
    expect(open_step).to_contain_text("open")
    expect(fact(requester, "Digest approvers sign")).to_have_text(access_request.digest)
    screenshot(requester, "request-detail")

    # Stage 1: the inbox shows what is asked and why; deciding needs the password again.
    legal1 = new_page()
    sign_in(legal1, "legal1a", "pw-legal1a")
    legal1.get_by_role("link", name="Open your inbox").click()
    expect(legal1.get_by_role("heading", level=1, name="Waiting for your decision")).to_be_visible()
    item = legal1.get_by_role("listitem").filter(has=legal1.get_by_role("heading", name=f"Request #{pk}: DKM test"))
    for text in (JUSTIFICATION, TICKET, "requester", "troubleshooting", "none — yours is the first stage"):
        expect(item).to_contain_text(text)
    screenshot(legal1, "approver-inbox")
    decide_after_reauth(legal1, cast["legal1a"], pk, 1, FIRST_COMMENT, shots=True)

    # Stage 2: an approver with an authenticator app gives the code at sign-in and again.
    legal2 = new_page()
    sign_in_with_code(legal2, cast["legal2"])
    legal2.goto("/approvals/")
    item = legal2.get_by_role("listitem").filter(has=legal2.get_by_role("heading", name=f"Request #{pk}: DKM test"))
    expect(item).to_contain_text(f"legal1a approved — “{FIRST_COMMENT}”")
    decide_after_reauth(legal2, cast["legal2"], pk, 2, SECOND_COMMENT)
    legal2.get_by_role("link", name="Your past decisions").click()
    expect(legal2.get_by_role("heading", level=1, name="Your decisions")).to_be_visible()
    assert column(legal2, "Your decisions, newest first", "Comment") == [SECOND_COMMENT]
    assert column(legal2, "Your decisions, newest first", "Decision") == ["Approve"]
    screenshot(legal2, "decisions")

    # The requester's dashboard: the grant, with a countdown that runs.
    grant = Grant.objects.get(request_id=pk)
    requester.goto("/access/")
    card = requester.get_by_role("listitem").filter(has=requester.get_by_role("heading", name="DKM test"))
    countdown = card.get_by_role("timer")
    expect(countdown).to_have_text(re.compile(r"^[45] min \d+ s left$"))
    shown = countdown.inner_text()
    expect(countdown).not_to_have_text(shown, timeout=2_500)
    expect(card).to_contain_text("Credential: not minted yet")
    mine = requester.get_by_role("table", name="My requests, newest first").get_by_role("row").filter(has_text=f"#{pk}")
    expect(mine).to_contain_text("approved")
    expect(mine.get_by_role("link", name=f"grant #{grant.pk}")).to_be_visible()
    screenshot(requester, "dashboard-grant")
    card.get_by_role("link", name="DKM test").click()
    expect(requester).to_have_url(re.compile(rf"/grants/{grant.pk}/$"))
    expect(requester.get_by_role("heading", level=1, name=f"Grant #{grant.pk}: DKM test")).to_be_visible()
    expect(fact(requester, "State")).to_have_text("active")
    screenshot(requester, "grant-detail")

    # The credential: shown once, in a response nothing keeps.
    with requester.expect_response(posted_to("/credential/")) as minting:
        requester.get_by_role("button", name="Mint credential").click()
    assert minting.value.status == 200
    assert "no-store" in minting.value.headers["cache-control"]
    minted = requester.get_by_role("textbox", name="Grant credential")
    token = minted.input_value()
    assert token.startswith("jitg_") and len(token) > 30
    expect(requester.get_by_role("button", name="Copy")).to_be_visible()
    expect(requester.get_by_role("button", name="Mint credential")).to_have_count(0)
    screenshot(requester, "credential-minted")
    requester.goto(f"/grants/{grant.pk}/")
    expect(requester.get_by_role("textbox", name="Grant credential")).to_have_count(0)
    expect(fact(requester, "Credential")).to_contain_text(f"begins {token[:9]}")
    assert token not in requester.content()

    # The security admin's pages, while the grant is active; and an account's pages.
    secadmin = new_page()
    sign_in(secadmin, "secadmin", "pw-secadmin")
    secadmin.goto("/security/entitlements/")
    expect(secadmin.get_by_role("heading", level=1, name="Entitlements")).to_be_visible()
    expect(secadmin.get_by_role("main")).to_contain_text("dkm-test")
    screenshot(secadmin, "security-entitlements")
    secadmin.goto("/security/keyrings/")
    expect(secadmin.get_by_role("heading", level=1, name="Key rings")).to_be_visible()
    expect(secadmin.get_by_role("main")).to_contain_text("ring-mail")
    screenshot(secadmin, "security-keyrings")
    secadmin.goto("/security/grants/")
    expect(secadmin.get_by_role("heading", level=1, name="Active grants")).to_be_visible()
    row = secadmin.get_by_role("table", name="Active grants").get_by_role("row").filter(has_text="requester")
    expect(row).to_contain_text("dkm-test")
    expect(row).to_contain_text("minted")
    expect(row.get_by_role("textbox", name=f"Reason for revoking grant {grant.pk}")).to_be_editable()
    screenshot(secadmin, "security-grants")
    secadmin.goto("/account/")
    expect(secadmin.get_by_role("heading", level=1, name="Your account")).to_be_visible()
    expect(fact(secadmin, "Authenticator app")).to_contain_text("Not set up")
    screenshot(secadmin, "account")
    secadmin.get_by_role("link", name="Set up an authenticator app").click()
    # A first set-up asks for the password again before it shows a key.
    expect(secadmin.get_by_role("heading", level=1, name="Confirm it is you")).to_be_visible()
    assert not TOTPDevice.objects.filter(user__username="secadmin").exists()
    secadmin.get_by_label("Password", exact=True).fill("pw-secadmin")
    secadmin.get_by_role("button", name="Confirm").click()
    expect(secadmin.get_by_role("heading", level=1, name="Authenticator app")).to_be_visible()
    expect(secadmin.get_by_role("img", name=re.compile("^QR code that sets up your authenticator app"))).to_be_visible()
    expect(secadmin.locator("#totp-secret")).to_have_text(re.compile(r"^[A-Z2-7]{4}( [A-Z2-7]{1,4})+$"))
    expect(secadmin.get_by_label("Code from the app, to confirm", exact=True)).to_be_editable()
    screenshot(secadmin, "two-factor-enrol")

    # A second tab keeps the grant page as it was, its reveal form filled in.
    stale = requester.context.new_page()
    stale.goto(f"/grants/{grant.pk}/")
    stale.get_by_label("Reason", exact=True).fill("Reveal again from a page left open")

    # The grant now ends in a few seconds (its worker task still waits for the original end).
    Grant.objects.filter(pk=grant.pk).update(expires_at=timezone.now() + timedelta(seconds=10))
    requester.reload()
    requester.get_by_label("Reason", exact=True).fill(REVEAL_REASON)
    with requester.expect_response(posted_to(f"/secrets/{secret.pk}/reveal/")) as revealing:
        requester.get_by_role("button", name="Reveal mail-1").click()
    reveal_answer: Response = revealing.value
    assert reveal_answer.status == 200
    assert "no-store" in reveal_answer.headers["cache-control"]
    value = requester.get_by_role("textbox", name="Value")
    expect(value).to_have_value(marker)
    expect(requester.get_by_role("button", name="Copy")).to_be_enabled()
    expect(requester.get_by_role("status").filter(has_text="removed from this page")).to_be_hidden()
    expect(requester.get_by_role("heading", level=1, name="mail-1")).to_be_visible()
    screenshot(requester, "reveal")

    # The grant ends with the page open: the value is wiped from the page, and the page says so.
    expect(value).to_be_hidden(timeout=15_000)
    assert requester.locator("#secret-value").input_value() == ""
    assert requester.locator("#secret-value").text_content() == ""
    expect(requester.get_by_role("status").filter(has_text="The grant has ended")).to_have_text(
        "The grant has ended: the value was removed from this page. Revealing it again is refused."
    )
    expect(requester.get_by_role("button", name="Copy")).to_be_hidden()
    assert marker not in requester.content()
    screenshot(requester, "reveal-hidden")

    # The form left open is refused, by the server's own clock: the 403 page says why.
    with stale.expect_response(posted_to(f"/secrets/{secret.pk}/reveal/")) as refusing:
        stale.get_by_role("button", name="Reveal mail-1").click()
    assert refusing.value.status == 403
    not_allowed(
        stale,
        "Revealing needs an active grant for dkm-test (or standing membership as a service account).",
    )
    assert marker not in stale.content()
    # And the grant page now offers nothing to reveal.
    requester.goto(f"/grants/{grant.pk}/")
    expect(fact(requester, "State")).to_have_text("expired")
    expect(requester.get_by_text("This grant has ended; it opens nothing any more.")).to_be_visible()
    expect(requester.get_by_role("button", name="Reveal mail-1")).to_have_count(0)

    # The auditor finds every step of it in the trail.
    auditor = new_page()
    sign_in(auditor, "auditor", "pw-auditor")
    filter_events(auditor, **{"Action": "auth.reauthenticated"})
    # Both approvers before deciding, and the security admin before setting up an authenticator.
    assert column(auditor, "Audit events, newest first", "Actor") == ["secadmin", "legal2", "legal1a"]
    filter_events(auditor, **{"Actor": "requester", "Action": "secret.*"})
    assert column(auditor, "Audit events, newest first", "Action") == ["secret.reveal_denied", "secret.revealed"]
    assert column(auditor, "Audit events, newest first", "Outcome") == ["denied", "success"]
    filter_events(auditor, **{"Target type": "access_request", "Target id": str(pk)})
    auditor.get_by_role("link", name=f"access_request {pk}").first.click()
    expect(auditor.get_by_role("heading", level=1, name=f"Request {pk}")).to_be_visible()
    timeline = column(auditor, "Events of this request, oldest first", "Action")
    steps = ["request.submitted", "decision.approved", "decision.approved", "grant.issued", "credential.minted"]
    assert [action for action in timeline if action in steps] == steps, timeline
    assert "secret.revealed" in timeline, timeline
    # Each approval's event carries the digest the approver signed.
    events = auditor.get_by_role("table", name="Events of this request, oldest first")
    seqs = (
        events.get_by_role("row").filter(has_text="decision.approved").get_by_role("link", name=re.compile(r"^Event "))
    )
    expect(seqs).to_have_count(2)
    for href in [link.get_attribute("href") for link in seqs.all()]:
        auditor.goto(href)
        expect(auditor.locator("pre.json")).to_contain_text(access_request.digest)
    assert (
        sorted(e.data["digest"] for e in AuditEvent.objects.filter(action="decision.approved"))
        == [access_request.digest] * 2
    )
    assert [
        e.data["second_factor"] for e in AuditEvent.objects.filter(action="auth.reauthenticated").order_by("seq")
    ] == [False, True, False]
    revealed = AuditEvent.objects.get(action="secret.revealed")
    assert (revealed.actor_name, revealed.grant_id, revealed.data["reason"]) == ("requester", grant.pk, REVEAL_REASON)
    denied = AuditEvent.objects.get(action="secret.reveal_denied")
    assert (denied.actor_name, denied.target_id, denied.data["refusal"]) == ("requester", str(secret.pk), "no_access")

    # The evidence pack of the grant.
    auditor.goto(f"/audit/requests/{pk}/")
    fact(auditor, "Grant").get_by_role("link", name=f"grant {grant.pk}").click()
    auditor.get_by_role("link", name="Evidence pack").click()
    expect(auditor.get_by_role("heading", level=1, name=f"Evidence pack: grant {grant.pk}")).to_be_visible()
    decisions = auditor.get_by_role("table", name="Decisions, in stage order").locator("tbody tr")
    expect(decisions).to_have_count(2)
    expect(decisions.filter(has_text="matches")).to_have_count(2)
    expect(decisions.nth(0)).to_contain_text(FIRST_COMMENT)
    expect(decisions.nth(1)).to_contain_text(SECOND_COMMENT)
    content = auditor.content()
    assert token not in content and marker not in content
    screenshot(auditor, "evidence")
    for text in (token, marker):
        assert not AuditEvent.objects.filter(data__icontains=text).exists()


# --- refusals -----------------------------------------------------------------------------------


@pytest.mark.postgres
def test_the_pages_refuse_what_a_person_may_not_do_and_say_why(new_page, cast, entitlement):
    # A datacenter admin who is also a stage-1 approver cannot decide their own request.
    dual = make_user("dual", roles.DATACENTER_ADMINS, "legal-l1")
    own = submit(dual, entitlement, ticket="INC-3001")
    page = new_page()
    sign_in(page, "dual", "pw-dual")
    page.goto("/approvals/")
    expect(page.get_by_text("Nothing is waiting for you.")).to_be_visible()
    answer = page.goto(f"/approvals/{own.pk}/")
    assert answer is not None and answer.status == 403
    not_allowed(page, "You cannot decide your own request.")

    # The stage-1 approver who is also in legal-l2 cannot decide stage 2 as well.
    cast["legal1a"].groups.add(Group.objects.get(name="legal-l2"))
    other = approve_through(submit(cast["requester"], entitlement, ticket="INC-3002"), cast["legal1a"])
    approver = new_page()
    sign_in(approver, "legal1a", "pw-legal1a")
    answer = approver.goto(f"/approvals/{other.pk}/")
    assert answer is not None and answer.status == 403
    not_allowed(approver, "You have already decided a stage of this request.")

    # An auditor reads everything and decides nothing, even with a well-formed POST.
    auditor = new_page()
    sign_in(auditor, "auditor", "pw-auditor")
    refused = auditor.request.post(
        f"/approvals/{other.pk}/",
        headers=csrf_headers(auditor),
        form={"decision": "approve", "stage": "2", "digest": other.digest, "comment": "audit"},
        max_redirects=0,
    )
    assert refused.status == 403
    assert "Only members of legal-l2 may decide the open stage." in refused.text()
    assert Decision.objects.filter(request=other).count() == 1
    assert AuditEvent.objects.get(action="decision.refused.not_in_stage_group").actor_name == "auditor"
    answer = auditor.goto("/security/entitlements/")
    assert answer is not None and answer.status == 403
    not_allowed(auditor, SECURITY_ADMINS_ONLY)

    # Bad input on the request form: the message beside the field, and what was typed kept.
    requester = new_page()
    sign_in(requester, "requester", "pw-requester")
    requester.goto("/requests/new/")
    requester.get_by_label("Entitlement", exact=True).select_option(label="DKM test (dkm-test)")
    requester.get_by_label("Purpose", exact=True).select_option(label="Debugging")
    requester.get_by_label("Ticket", exact=True).fill("INC-3003")
    requester.get_by_label("Duration (minutes)", exact=True).fill("600")
    with requester.expect_response(posted_to("/requests/new/")) as sent:
        requester.get_by_role("button", name="Submit request").click()
    assert sent.value.status == 400
    justification = requester.get_by_label("Justification", exact=True)
    expect(justification).to_have_attribute("aria-invalid", "true")
    expect(justification).to_have_accessible_description(re.compile(r"This field is required\.$"))
    expect(requester.get_by_label("Entitlement", exact=True)).to_have_value("dkm-test")
    expect(requester.get_by_label("Purpose", exact=True)).to_have_value("debugging")
    expect(requester.get_by_label("Ticket", exact=True)).to_have_value("INC-3003")
    # Every problem shows at once: the policy's duration limit beside the duration too.
    duration = requester.get_by_label("Duration (minutes)", exact=True)
    expect(duration).to_have_attribute("aria-invalid", "true")
    expect(duration).to_have_accessible_description(
        re.compile(r"Duration must be at most 28800 seconds \(the policy maximum\)\.$")
    )

    # Fixing one leaves the other in place.
    justification.fill(JUSTIFICATION)
    with requester.expect_response(posted_to("/requests/new/")) as sent:
        requester.get_by_role("button", name="Submit request").click()
    assert sent.value.status == 400
    expect(duration).to_have_attribute("aria-invalid", "true")
    expect(duration).to_have_value("600")
    expect(requester.get_by_label("Justification", exact=True)).to_have_value(JUSTIFICATION)
    expect(requester.get_by_label("Justification", exact=True)).not_to_have_attribute("aria-invalid", "true")
    assert not AccessRequest.objects.filter(ticket="INC-3003").exists()
