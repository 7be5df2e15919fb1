"""Sign-in in a real browser: the refusal beside the form, where each role lands (several people
signed in side by side), the return to the page asked for, sign-out, and the stylesheet applied."""

from __future__ import annotations

import re

from django.conf import settings
from playwright.sync_api import Locator, Page, expect

from jitaccess.admin_site import SIGN_IN_REFUSED
from jitaccess.audit.models import AuditEvent
from jitaccess.web.access import AUDITORS_ONLY
from tests.e2e.conftest import screenshot, session_cookie, sign_in, submit_sign_in


def sign_in_form(page: Page) -> Locator:
    return page.locator("form").filter(has=page.get_by_role("button", name="Sign in"))


def main_nav(page: Page) -> Locator:
    return page.get_by_role("navigation", name="Main")


def test_the_sign_in_page_is_styled_and_labels_every_field(page, cast):
    page.goto("/login/")

    expect(page).to_have_title("Sign in · jitaccess")
    expect(page.get_by_role("heading", level=1, name="Sign in")).to_be_visible()
    for label in ("Username", "Password", "Authenticator code"):
        expect(page.get_by_label(label, exact=True)).to_be_editable()
    expect(page.get_by_label("Authenticator code", exact=True)).to_have_accessible_description(
        "Six digits from your authenticator app, if you have set one up."
    )
    # app.css is served by the live server and applies: the header wears the brand colour.
    expect(page.locator("header.site-header")).to_have_css("background-color", "rgb(18, 50, 92)")
    # Nobody is signed in: no navigation, no sign-out.
    expect(main_nav(page)).to_have_count(0)
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)
    screenshot(page, "sign-in")


def test_a_wrong_password_is_refused_beside_the_form_and_opens_no_session(page, cast):
    submit_sign_in(page, "auditor", "not-the-password")

    expect(page).to_have_url(re.compile(r"/login/$"))
    expect(page.get_by_role("alert")).to_have_text(SIGN_IN_REFUSED)
    # The message is tied to the form, so a screen reader announces it with the form.
    expect(sign_in_form(page)).to_have_accessible_description(SIGN_IN_REFUSED)
    expect(page.get_by_label("Username", exact=True)).to_have_value("auditor")
    expect(page.get_by_label("Password", exact=True)).to_have_value("")
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)
    assert session_cookie(page) is None
    refused = AuditEvent.objects.get(action="auth.login_failed")
    assert (refused.target_id, refused.outcome) == ("auditor", "denied")
    screenshot(page, "sign-in-refused")

    # The refusal leads nowhere: the audit pages still send the browser to the sign-in.
    page.goto("/audit/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/audit/$"))


def test_an_auditor_signs_in_with_the_keyboard_and_lands_on_the_audit_events(page, cast):
    page.goto("/login/")
    page.get_by_label("Username", exact=True).click()
    page.keyboard.type("auditor")
    page.keyboard.press("Tab")
    expect(page.get_by_label("Password", exact=True)).to_be_focused()
    page.keyboard.type("pw-auditor")
    page.keyboard.press("Enter")

    expect(page).to_have_url(re.compile(r"/audit/$"))
    expect(page.get_by_role("heading", level=1, name="Audit events")).to_be_visible()
    expect(main_nav(page).get_by_role("link", name="Audit events")).to_have_attribute("aria-current", "page")
    expect(page.get_by_role("banner")).to_contain_text("Signed in as auditor")
    assert session_cookie(page) is not None
    assert AuditEvent.objects.get(action="auth.login").actor_name == "auditor"


def test_everyone_else_lands_on_the_home_page_signed_in_side_by_side(new_page, cast):
    # One browser context per person: all of them are signed in at the same time.
    pages = {username: new_page() for username in ("requester", "legal1a", "secadmin")}
    for username, page in pages.items():
        sign_in(page, username, f"pw-{username}")

    for username, page in pages.items():
        page.reload()
        expect(page).to_have_url(re.compile(r"://[^/]+/$"))
        expect(page.get_by_role("banner")).to_contain_text(f"Signed in as {username}")
        expect(page.get_by_role("heading", level=1)).to_be_visible()
        expect(main_nav(page).get_by_role("link", name="Audit events")).to_have_count(0)
    assert len({session_cookie(page) for page in pages.values()}) == 3
    assert sorted(AuditEvent.objects.filter(action="auth.login").values_list("actor_name", flat=True)) == sorted(pages)

    # The auditors' pages are not theirs: the 403 page says why.
    requester = pages["requester"]
    requester.goto("/audit/")
    expect(requester.get_by_role("heading", level=1, name="Not allowed")).to_be_visible()
    expect(requester.get_by_text(AUDITORS_ONLY)).to_be_visible()


def test_sign_in_returns_to_the_page_asked_for(page, cast):
    page.goto("/audit/verify/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/audit/verify/$"))

    page.get_by_label("Username", exact=True).fill("auditor")
    page.get_by_label("Password", exact=True).fill("pw-auditor")
    page.get_by_role("button", name="Sign in").click()

    expect(page).to_have_url(re.compile(r"/audit/verify/$"))
    expect(page.get_by_role("heading", level=1, name="Verification of the audit trail")).to_be_visible()


def test_sign_out_ends_the_session(page, cast):
    sign_in(page, "auditor", "pw-auditor")

    page.get_by_role("button", name="Sign out").click()

    expect(page).to_have_url(re.compile(r"/login/$"))
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)
    page.goto("/audit/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/audit/$"))
    assert AuditEvent.objects.get(action="auth.logout").actor_name == "auditor"


def test_a_security_admin_lets_a_locked_out_person_back_in(new_page, cast):
    locked, secadmin = new_page(), new_page()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        submit_sign_in(locked, "legal1a", "mistyped")
    expect(locked.get_by_role("heading", level=1, name="Sign-in locked")).to_be_visible()
    expect(locked.get_by_text("ask a security admin to unlock it")).to_be_visible()

    sign_in(secadmin, "secadmin", "pw-secadmin")
    main_nav(secadmin).get_by_role("link", name="People").click()
    locked_table = secadmin.get_by_role("table", name="Locked sign-ins")
    expect(locked_table.get_by_role("row").filter(has_text="legal1a")).to_have_count(1)
    screenshot(secadmin, "security-people")
    unlock = secadmin.locator("form").filter(has=secadmin.get_by_role("button", name="Unlock"))
    unlock.get_by_label("User name").fill("legal1a")
    unlock.get_by_label("Reason").fill("Called the service desk, ticket 4711")
    unlock.get_by_role("button", name="Unlock").click()
    # First "Confirm it is you"; back on the page, what was typed is still there.
    expect(secadmin.get_by_role("heading", level=1, name="Confirm it is you")).to_be_visible()
    secadmin.get_by_label("Password", exact=True).fill("pw-secadmin")
    secadmin.get_by_role("button", name="Confirm").click()
    expect(unlock.get_by_label("User name")).to_have_value("legal1a")
    expect(unlock.get_by_label("Reason")).to_have_value("Called the service desk, ticket 4711")
    assert not AuditEvent.objects.filter(action="auth.unlocked").exists()
    unlock.get_by_role("button", name="Unlock").click()
    expect(secadmin.get_by_role("status")).to_contain_text("Sign-in of legal1a unlocked")
    expect(locked_table.get_by_role("row").filter(has_text="legal1a")).to_have_count(0)

    sign_in(locked, "legal1a", "pw-legal1a")
    unlocked = AuditEvent.objects.get(action="auth.unlocked")
    assert (unlocked.actor_name, unlocked.target_id) == ("secadmin", "legal1a")
    assert unlocked.data["reason"] == "Called the service desk, ticket 4711"
