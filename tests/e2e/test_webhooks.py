"""Webhooks in a real browser: a security admin adds a receiver (re-authenticating first, the signing
secret shown once), a request is submitted, and the worker's delivery appears on the endpoint's
page; the receiver got a POST it can verify with the secret the page showed."""

from __future__ import annotations

import json
import re

from playwright.sync_api import expect

from jitaccess.webhooks import signing
from jitaccess.webhooks.models import DeliveryStatus, WebhookDelivery
from tests.conftest import submit
from tests.e2e.conftest import screenshot, sign_in
from tests.webhooks.conftest import receiver  # noqa: F401 — the fixture, a real HTTP receiver
from tests.worker import wait_for


def test_a_security_admin_adds_a_webhook_and_sees_its_delivery(new_page, cast, entitlement, celery_worker, receiver):  # noqa: F811
    page = new_page()
    sign_in(page, "secadmin", "pw-secadmin")
    page.get_by_role("navigation", name="Main").get_by_role("link", name=re.compile(r"^Webhooks")).click()
    screenshot(page, "security-webhooks-empty")
    page.get_by_role("link", name="New webhook").click()
    page.get_by_label("Name").fill("siem")
    page.get_by_label("URL").fill(receiver.url)
    page.get_by_label("request.submitted").check()
    page.get_by_role("button", name="Create webhook").click()
    expect(page.get_by_role("heading", level=1, name="Confirm it is you")).to_be_visible()
    page.get_by_label("Password", exact=True).fill("pw-secadmin")
    page.get_by_role("button", name="Confirm").click()
    # Back on the form with what was typed; send it again.
    expect(page.get_by_label("URL")).to_have_value(receiver.url)
    page.get_by_role("button", name="Create webhook").click()

    expect(page.get_by_role("heading", level=1, name="Webhook created")).to_be_visible()
    secret = page.locator("#signing-secret").input_value()
    assert secret.startswith(signing.SECRET_PREFIX)
    screenshot(page, "security-webhook-created")
    page.get_by_role("link", name="Go to the webhook").click()
    expect(page.get_by_text(secret)).to_have_count(0)

    request = submit(cast["requester"], entitlement)
    # The worker sends it after the submission's commit; the page shows what it recorded.
    assert wait_for(lambda: WebhookDelivery.objects.filter(status=DeliveryStatus.DELIVERED).exists(), timeout=30)
    page.reload()
    deliveries = page.get_by_role("table", name="Deliveries")
    expect(deliveries.get_by_role("row").filter(has_text="request.submitted")).to_contain_text("delivered")
    screenshot(page, "security-webhook-detail")

    [received] = receiver.requests
    headers = {name.lower(): value for name, value in received.headers.items()}
    assert signing.signature_valid(secret, received.body, headers["x-jitaccess-signature"])
    payload = json.loads(received.body)
    assert payload["event"] == "request.submitted"
    assert payload["target"] == {"type": "access_request", "id": str(request.pk)}
