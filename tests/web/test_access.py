"""Who may open the audit pages (invariant 14: auditors read everything and change nothing):
auditors only; anonymous visitors are sent to sign in; everyone else gets a 403 page that says
why; no page takes anything but GET."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from approvals.models import AccessRequest
from jitaccess.audit.models import AuditEvent
from jitaccess.audit.reports import REPORTS
from tests.audit.test_api import state
from tests.web.conftest import by_id, elements, link, signed_in, text_of

PAGES = [
    "/audit/",
    "/audit/?action=secret.*",
    "/audit/events/{seq}/",
    "/audit/verify/",
    "/audit/reports/",
    *[f"/audit/reports/{name}/" for name in sorted(REPORTS)],
    "/audit/changes/",
    "/audit/requests/{request}/",
    "/audit/grants/{grant}/",
    "/audit/grants/{grant}/evidence/",
    "/audit/grants/{grant}/evidence.json",
]
NOT_AUDITORS = ["requester", "admin2", "legal1a", "legal1b", "legal2", "legal2b", "secadmin", "svc", "outsider"]


@pytest.fixture
def world(granted: AccessRequest) -> dict[str, Any]:
    return {
        "request": granted.pk,
        "grant": granted.grant.pk,
        "seq": AuditEvent.objects.order_by("seq").values_list("seq", flat=True).first(),
    }


def auditor_reads() -> int:
    return AuditEvent.objects.filter(action__startswith="audit.").count()


@pytest.mark.parametrize("path", PAGES)
def test_anonymous_visitors_are_sent_to_sign_in(world, path):
    url = path.format(**world)

    response = Client().get(url)

    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=/audit/")
    assert auditor_reads() == 0


@pytest.mark.parametrize("role", NOT_AUDITORS)
@pytest.mark.parametrize("path", PAGES)
def test_nobody_but_an_auditor_opens_an_audit_page(cast, world, role, path):
    response = signed_in(cast[role]).get(path.format(**world))

    assert response.status_code == 403
    assert text_of(elements(response, "p", **{"class": "lead"})[0]) == "Only auditors can browse the audit trail."
    assert link(response, "Audit events") is None  # the header offers them nothing of the trail
    assert auditor_reads() == 0


@pytest.mark.parametrize("path", PAGES)
def test_the_auditor_opens_every_page(cast, world, auditor, path):
    response = auditor.get(path.format(**world))

    assert response.status_code == 200


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete", "head", "options"])
def test_audit_pages_change_nothing_through_any_other_method(world, auditor, method):
    before = state()

    statuses = {path: getattr(auditor, method)(path.format(**world)).status_code for path in PAGES}

    assert set(statuses.values()) == {405}, statuses
    assert state() == before


def test_the_403_page_keeps_the_header_and_a_way_home(cast, world):
    response = signed_in(cast["legal1a"]).get("/audit/")

    assert text_of(elements(response, "h1")[0]) == "Not allowed"
    assert link(response, "Go to your home page") == "/"
    assert link(response, "API docs") == "/api/v1/docs/"
    assert by_id(response, "main").tag == "main"


def test_an_unknown_page_is_the_404_page(cast):
    response = signed_in(cast["auditor"]).get("/nothing/here/")

    assert response.status_code == 404
    assert text_of(elements(response, "h1")[0]) == "Not found"
    assert "/nothing/here/" in text_of(elements(response, "p", **{"class": "lead"})[0])


def test_the_auditors_header_links_every_audit_page_and_marks_the_current_one(cast):
    response = signed_in(cast["auditor"]).get("/audit/reports/")

    nav = [a for a in elements(response, "a") if a.attrs["href"].startswith("/audit/") and a.attrs.get("aria-current")]
    assert [text_of(a) for a in nav] == ["Reports"]
    assert link(response, "Audit events") == "/audit/"
    assert link(response, "Configuration changes") == "/audit/changes/"
    assert link(response, "Verification") == "/audit/verify/"
