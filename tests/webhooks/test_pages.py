"""The security admins' webhook pages: list, create (secret shown once), detail with deliveries,
rotate, deactivate, send again; re-authentication first; 403 for other roles."""

from __future__ import annotations

import time

import pytest
from django.test import Client

from jitaccess.accounts.reauth import REAUTH_SESSION_KEY
from jitaccess.webhooks import signing
from jitaccess.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from jitaccess.webhooks.services import delivery_attempt
from tests.accounts.conftest import signed_in
from tests.conftest import submit
from tests.web.conftest import by_id, elements, table_rows, text_of

PAGE = "/security/webhooks/"
NEW_PAGE = "/security/webhooks/new/"
FORM = {"name": "siem", "url": "https://siem.example.com/hook", "events": ["grant.issued", "request.submitted"]}


def test_creating_asks_to_reauthenticate_then_shows_the_secret_once(cast):
    client = signed_in(cast["secadmin"], reauthenticated=False)
    detour = client.post(NEW_PAGE, FORM)
    assert detour.status_code == 302 and detour["Location"].startswith("/account/reauth/")
    assert not WebhookEndpoint.objects.exists()
    session = client.session
    session[REAUTH_SESSION_KEY] = {"user": cast["secadmin"].pk, "at": time.time()}
    session.save()
    assert by_id(client.get(NEW_PAGE), "id_name").attrs["value"] == "siem"  # what was typed came back

    created = client.post(NEW_PAGE, FORM)
    assert created.status_code == 200 and "no-cache" in created["Cache-Control"]
    secret = by_id(created, "signing-secret").attrs["value"]
    assert secret.startswith(signing.SECRET_PREFIX)
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.events == ["request.submitted", "grant.issued"]
    assert secret not in client.get(PAGE).content.decode()
    assert secret not in client.get(f"{PAGE}{endpoint.pk}/").content.decode()
    assert table_rows(client.get(PAGE), "Webhooks")[0][:4] == ["siem", FORM["url"], "2", "active"]


@pytest.mark.parametrize(
    ("change", "field"),
    [({"url": "ftp://x.example/"}, "url"), ({"url": "https://a:b@x.example/"}, "url"), ({"events": []}, "events")],
)
def test_bad_input_is_shown_beside_its_field_with_a_400(cast, change, field):
    response = signed_in(cast["secadmin"]).post(NEW_PAGE, {**FORM, **change})
    assert response.status_code == 400
    assert by_id(response, f"id_{field}_error")
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.parametrize("who", ["requester", "auditor", "legal1a", "svc"])
def test_other_roles_get_the_403_page(cast, endpoint, who):
    client = signed_in(cast[who])
    for path in (PAGE, NEW_PAGE, f"{PAGE}{endpoint.endpoint.pk}/"):
        response = client.get(path)
        assert response.status_code == 403 and "security admins" in response.content.decode()
    assert client.post(f"{PAGE}{endpoint.endpoint.pk}/deactivate/").status_code == 403
    assert "Webhooks" not in [text_of(a) for a in elements(client.get("/account/"), "a")]


def test_anonymous_visitors_go_to_sign_in():
    response = Client().get(PAGE)
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_the_detail_page_lists_deliveries_and_filters_by_status(cast, entitlement, endpoint, receiver, settings):
    settings.JIT_WEBHOOK_MAX_ATTEMPTS = 1
    receiver.answers = [500, 200]
    submit(cast["requester"], entitlement)
    failed = WebhookDelivery.objects.get()
    delivery_attempt(failed.pk, 1)
    submit(cast["admin2"], entitlement)
    delivered = WebhookDelivery.objects.exclude(pk=failed.pk).get()
    delivery_attempt(delivered.pk, 1)
    client = signed_in(cast["secadmin"])
    url = f"{PAGE}{endpoint.endpoint.pk}/"

    rows = table_rows(client.get(url), "Deliveries")
    assert [(row[1], row[2]) for row in rows] == [(str(delivered.uuid), "delivered"), (str(failed.uuid), "failed")]
    assert rows[1][7] == "Send again" and rows[0][7] == "–"
    only_failed = table_rows(client.get(url, {"status": "failed"}), "Deliveries")
    assert [row[1] for row in only_failed] == [str(failed.uuid)]
    assert client.get(url, {"status": "lost"}).status_code == 400
    assert client.get(f"{PAGE}{endpoint.endpoint.pk + 100}/").status_code == 404

    stale = signed_in(cast["secadmin"], reauthenticated=False)
    assert stale.post(f"{PAGE}deliveries/{failed.pk}/redeliver/").status_code == 302
    failed.refresh_from_db()
    assert failed.status == DeliveryStatus.FAILED  # sent to re-authenticate, nothing else
    assert client.post(f"{PAGE}deliveries/{failed.pk}/redeliver/")["Location"] == url
    failed.refresh_from_db()
    assert failed.status == DeliveryStatus.PENDING


def test_rotating_and_deactivating_on_the_page(cast, endpoint):
    client = signed_in(cast["secadmin"])
    url = f"{PAGE}{endpoint.endpoint.pk}/"
    assert signed_in(cast["secadmin"], reauthenticated=False).post(f"{url}rotate-secret/").status_code == 302

    rotated = client.post(f"{url}rotate-secret/")
    assert rotated.status_code == 200
    new_secret = by_id(rotated, "signing-secret").attrs["value"]
    assert new_secret != endpoint.secret and new_secret not in client.get(url).content.decode()
    assert client.get(f"{url}rotate-secret/").status_code == 405

    done = client.post(f"{url}deactivate/")
    assert done.status_code == 302 and done["Location"] == url
    endpoint.endpoint.refresh_from_db()
    assert not endpoint.endpoint.is_active
    page = client.get(url).content.decode()
    assert "Rotate the secret" not in page and "deactivated" in page
