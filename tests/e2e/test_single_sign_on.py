"""Single sign-on in a real browser: the button on the sign-in page, the round trip through the
local OpenID provider the test starts, and the session it opens with the mapped groups."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from jitaccess.accounts.models import User
from jitaccess.audit.models import AuditEvent
from tests.accounts.oidc_provider import FakeProvider, provider_enabled
from tests.e2e.conftest import screenshot


@pytest.fixture
def idp(settings: Any) -> Any:
    yield from provider_enabled(settings)


def test_a_person_signs_in_through_the_provider_and_lands_with_the_mapped_role(page, idp: FakeProvider, settings):
    settings.JIT_OIDC_GROUP_MAP = [("idp-dc-admins", "datacenter-admins")]
    idp.person = {"sub": "e2e-dana", "preferred_username": "dana", "groups": ["idp-dc-admins"]}

    page.goto("/login/?next=/access/")
    button = page.get_by_role("link", name="Sign in with Test IdP")
    expect(button).to_be_visible()
    screenshot(page, "sign-in-sso")
    button.click()

    # Across the provider and back: the page asked for, signed in as the provider's person.
    expect(page).to_have_url(re.compile(r"/access/$"))
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    dana = User.objects.get(username="dana")
    assert list(dana.groups.values_list("name", flat=True)) == ["datacenter-admins"]
    assert not dana.has_usable_password()
    login = AuditEvent.objects.get(action="auth.login")
    assert (login.actor_name, login.data["method"]) == ("dana", "oidc")
    assert idp.authorize_requests[0]["redirect_uri"].endswith("/oidc/callback/")
