"""The Django admin is no second path around the services (invariant 1, DESIGN.md §2)."""

from __future__ import annotations

import pytest
from auditlog.models import LogEntry
from django.contrib.auth.models import Group

from approvals.models import Entitlement, StandingMembership
from jitaccess.audit.models import AuditEvent


@pytest.fixture
def staff(cast):
    for name in ("secadmin", "auditor", "requester"):
        cast[name].is_staff = True
        cast[name].save()
    return cast


@pytest.mark.parametrize("model", ["accessrequest", "decision", "grant"])
def test_workflow_records_cannot_be_added_or_changed_in_the_admin(client, staff, granted, model):
    client.force_login(staff["secadmin"])
    assert client.get(f"/admin/approvals/{model}/").status_code == 200
    assert client.get(f"/admin/approvals/{model}/add/").status_code == 403
    obj_id = {"accessrequest": granted.pk, "grant": granted.grant.pk, "decision": granted.decisions.first().pk}[model]
    page = client.get(f"/admin/approvals/{model}/{obj_id}/change/")
    assert page.status_code == 200 and b'name="_save"' not in page.content
    assert client.post(f"/admin/approvals/{model}/{obj_id}/delete/", {"post": "yes"}).status_code == 403


def test_audit_events_are_read_only_in_the_admin(client, staff, granted):
    client.force_login(staff["auditor"])
    assert client.get("/admin/audit/auditevent/").status_code == 200
    assert client.get("/admin/audit/auditevent/add/").status_code == 403
    first = AuditEvent.objects.first()
    assert client.post(f"/admin/audit/auditevent/{first.pk}/delete/", {"post": "yes"}).status_code == 403
    assert AuditEvent.objects.filter(pk=first.pk).exists()


def test_auditors_view_policies_but_only_security_admins_edit_them(client, staff, entitlement):
    client.force_login(staff["auditor"])
    assert client.get(f"/admin/approvals/entitlement/{entitlement.pk}/change/").status_code == 200
    assert client.get("/admin/approvals/entitlement/add/").status_code == 403
    client.force_login(staff["requester"])
    assert client.get("/admin/approvals/entitlement/").status_code == 403
    client.force_login(staff["secadmin"])
    assert client.get("/admin/approvals/entitlement/add/").status_code == 200


def add_standing_member(client, group, user):
    form = {
        "name": group.name,
        "description": "",
        "standing-TOTAL_FORMS": "1",
        "standing-INITIAL_FORMS": "0",
        "standing-0-user": str(user.pk),
    }
    return client.post(f"/admin/approvals/securitygroup/{group.pk}/change/", form)


def test_the_admin_refuses_a_person_as_standing_member(client, staff, security_group):
    client.force_login(staff["secadmin"])
    response = add_standing_member(client, security_group, staff["admin2"])
    assert not StandingMembership.objects.filter(user=staff["admin2"]).exists()
    assert response.status_code == 200
    assert b"Only service accounts may be standing members" in response.content
    assert not StandingMembership.objects.filter(user=staff["admin2"]).exists()


def test_standing_members_added_in_the_admin_are_audited(client, staff, security_group):
    client.force_login(staff["secadmin"])
    assert add_standing_member(client, security_group, staff["svc"]).status_code == 302
    assert StandingMembership.objects.filter(user=staff["svc"], security_group=security_group).exists()
    event = AuditEvent.objects.get(action="security_group.member_added")
    assert event.actor == staff["secadmin"]


def test_policy_edits_are_recorded_by_auditlog(db, entitlement):
    entitlement.max_duration_seconds = 7200
    entitlement.save()
    entry = LogEntry.objects.get_for_object(entitlement).first()
    assert entry is not None and "max_duration_seconds" in entry.changes_dict
    Group.objects.create(name="legal-l3")
    assert LogEntry.objects.filter(content_type__model="entitlement").exists()
    assert Entitlement.objects.get(pk=entitlement.pk).max_duration_seconds == 7200
