"""The Django admin is no second path around the services (invariant 1, DESIGN.md §2)."""

from __future__ import annotations

import pytest
from auditlog.models import LogEntry
from django.contrib.auth.models import Group

from approvals.models import ApprovalStage, Entitlement, StandingMembership
from jitaccess import roles
from jitaccess.audit.models import AuditEvent
from tests.conftest import make_user


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
    assert client.get("/admin/audit/auditcheckpoint/").status_code == 200
    # Everyone else, security admins included, is refused the audit pages of the admin.
    client.force_login(staff["secadmin"])
    assert client.get("/admin/audit/auditevent/").status_code == 403


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
    before = entitlement.max_duration_seconds
    entitlement.max_duration_seconds = 7200
    entitlement.save()
    # The fixture's create is logged too, and names every field: only the update entry proves the edit.
    entry = LogEntry.objects.get_for_object(entitlement).get(action=LogEntry.Action.UPDATE)
    assert entry.changes_dict == {"max_duration_seconds": [str(before), "7200"]}


def test_it_offers_existing_standing_memberships_for_removal_only(client, staff, security_group):
    StandingMembership.objects.create(security_group=security_group, user=staff["svc"])
    client.force_login(staff["secadmin"])
    page = client.get(f"/admin/approvals/securitygroup/{security_group.pk}/change/")
    assert page.status_code == 200
    assert b'name="standing-0-user"' not in page.content
    assert b'name="standing-0-DELETE"' in page.content


def test_it_refuses_to_repoint_a_standing_membership(client, staff, security_group):
    membership = StandingMembership.objects.create(security_group=security_group, user=staff["svc"])
    other_robot = make_user("svc-other", is_service_account=True)
    client.force_login(staff["secadmin"])
    form = {
        "name": security_group.name,
        "description": "",
        "standing-TOTAL_FORMS": "1",
        "standing-INITIAL_FORMS": "1",
        "standing-0-id": str(membership.pk),
        "standing-0-security_group": str(security_group.pk),
        "standing-0-user": str(other_robot.pk),
    }
    response = client.post(f"/admin/approvals/securitygroup/{security_group.pk}/change/", form)
    assert response.status_code == 302
    assert list(StandingMembership.objects.filter(security_group=security_group)) == [membership]
    assert StandingMembership.objects.get(pk=membership.pk).user == staff["svc"]
    assert not AuditEvent.objects.filter(action="security_group.member_added").exists()


def test_standing_members_removed_in_the_admin_are_audited(client, staff, security_group):
    membership = StandingMembership.objects.create(security_group=security_group, user=staff["svc"])
    client.force_login(staff["secadmin"])
    form = {
        "name": security_group.name,
        "description": "",
        "standing-TOTAL_FORMS": "1",
        "standing-INITIAL_FORMS": "1",
        "standing-0-id": str(membership.pk),
        "standing-0-security_group": str(security_group.pk),
        "standing-0-DELETE": "on",
    }
    response = client.post(f"/admin/approvals/securitygroup/{security_group.pk}/change/", form)
    assert response.status_code == 302
    assert not StandingMembership.objects.filter(pk=membership.pk).exists()
    assert AuditEvent.objects.get(action="security_group.member_removed").actor == staff["secadmin"]


# --- reserved role groups (separation of duties) ------------------------------------------------


def entitlement_form(security_group, requester_group, approver_group) -> dict[str, str]:
    return {
        "slug": "dkm-new",
        "name": "DKM new",
        "description": "",
        "security_group": str(security_group.pk),
        "requester_group": str(requester_group.pk),
        "purposes": ["debugging"],
        "requires_ticket": "on",
        "default_duration_seconds": "3600",
        "max_duration_seconds": "7200",
        "pending_ttl_seconds": "86400",
        "is_active": "on",
        "stages-TOTAL_FORMS": "1",
        "stages-INITIAL_FORMS": "0",
        "stages-0-order": "1",
        "stages-0-name": "Legal review",
        "stages-0-approver_group": str(approver_group.pk),
        "stages-0-required_approvals": "1",
    }


def test_the_admin_saves_an_entitlement_with_ordinary_groups(client, staff, security_group):
    client.force_login(staff["secadmin"])
    form = entitlement_form(
        security_group, Group.objects.get(name=roles.DATACENTER_ADMINS), Group.objects.get(name="legal-l1")
    )
    response = client.post("/admin/approvals/entitlement/add/", form)
    assert response.status_code == 302, response.content
    assert Entitlement.objects.get(slug="dkm-new").stages.count() == 1


@pytest.mark.parametrize("reserved", [roles.SECURITY_ADMINS, roles.AUDITORS])
@pytest.mark.parametrize("field", ["requester_group", "stages-0-approver_group"])
def test_the_admin_refuses_a_reserved_group_as_requester_or_approver(client, staff, security_group, reserved, field):
    client.force_login(staff["secadmin"])
    form = entitlement_form(
        security_group, Group.objects.get(name=roles.DATACENTER_ADMINS), Group.objects.get(name="legal-l1")
    )
    form[field] = str(Group.objects.get(name=reserved).pk)
    response = client.post("/admin/approvals/entitlement/add/", form)
    assert response.status_code == 200
    errors = (
        response.context["adminform"].form.errors
        if field == "requester_group"
        else response.context["inline_admin_formsets"][0].formset.forms[0].errors
    )
    assert errors[field.removeprefix("stages-0-")] == [
        f"{reserved} is a reserved role group; it can neither request nor approve access."
    ]
    assert not Entitlement.objects.filter(slug="dkm-new").exists()
    assert not ApprovalStage.objects.filter(name="Legal review", entitlement__slug="dkm-new").exists()
