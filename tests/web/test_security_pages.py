"""The security admins' pages: entitlements and their approval stages, key rings with "Rotate now",
and every active grant with "Revoke". Security admins only; rotating and revoking need a recent
re-authentication; no page ever shows key material or a secret value."""

from __future__ import annotations

import base64
import time
from datetime import timedelta
from typing import Any

import pytest
from auditlog.models import LogEntry
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse
from django.utils.http import urlencode

from approvals import services
from approvals.models import AccessRequest, ApprovalStage, Entitlement, Grant, GrantCredential, GrantState
from approvals.policy_services import PolicySpec, StageSpec, entitlement_create, entitlement_update
from jitaccess import clock
from jitaccess.accounts.reauth import REAUTH_SESSION_KEY
from jitaccess.audit.models import AuditEvent
from jitaccess.errors import InvalidInput, NotAllowed, Unavailable
from jitaccess.web.access import SECURITY_ADMINS_ONLY
from keys.models import KeyRing, KeyState, KeyVersion, Secret
from keys.services import keyring_create
from tests.conftest import approve_through, make_user, submit
from tests.keys.conftest import make_secret
from tests.web.conftest import by_id, elements, facts_of, recorded, signed_in, table_rows, text_of

# --- helpers ------------------------------------------------------------------------------------


def reauthenticated(user: Any, *, client: Client | None = None) -> Client:
    """A signed-in client whose session re-authenticated just now."""
    client = client or signed_in(user)
    session = client.session
    session[REAUTH_SESSION_KEY] = {"user": user.pk, "at": time.time()}
    session.save()
    return client


@pytest.fixture
def secadmin(cast: dict[str, Any]) -> Client:
    return reauthenticated(cast["secadmin"])


@pytest.fixture
def keyring(entitlement: Entitlement) -> KeyRing:
    return keyring_create(name="ring-pages", security_group=entitlement.security_group, acting_user=None)


@pytest.fixture
def world(granted: AccessRequest, keyring: KeyRing) -> dict[str, int]:
    return {"entitlement": granted.entitlement_id, "grant": granted.grant.pk, "keyring": keyring.pk}


def reauth_page(back_to: str) -> str:
    return reverse("account:reauth") + "?" + urlencode({"next": back_to})


def error_beside(response: Any, field_id: str) -> str:
    """The error shown with that field, tied to its control (or its group of checkboxes) by
    ``aria-describedby``, as a screen reader announces it."""
    error_id = f"{field_id}_error"
    described = [e for e in elements(response) if error_id in e.attrs.get("aria-describedby", "").split()]
    assert described, f"nothing is described by {error_id}"
    return text_of(by_id(response, error_id))


def group_id(name: str) -> int:
    return Group.objects.get_or_create(name=name)[0].pk


def policy_form(entitlement: Entitlement | None = None, *, stages: list[dict[str, Any]] | None = None, **fields: Any):
    """The POST of the entitlement form: a new DKM policy unless ``fields`` say otherwise."""
    data: dict[str, Any] = {
        "slug": "dkm-mail",
        "name": "DKM mail accounts",
        "description": "Connected mail account credentials",
        "security_group": entitlement.security_group_id if entitlement else None,
        "requester_group": group_id("datacenter-admins"),
        "purposes": ["debugging", "auditing"],
        "requires_ticket": "on",
        "default_duration_seconds": 1800,
        "max_duration_seconds": 7200,
        "pending_ttl_seconds": 3600,
        "is_active": "on",
    }
    data.update(fields)
    data = {name: value for name, value in data.items() if value is not None}
    if stages is None:
        stages = [
            {"order": 1, "name": "Legal review", "approver_group": group_id("legal-l1"), "required_approvals": 2},
            {"order": 2, "name": "Legal sign-off", "approver_group": group_id("legal-l2"), "deadline_seconds": 7200},
        ]
    data.update({"stages-TOTAL_FORMS": len(stages), "stages-INITIAL_FORMS": 0, "stages-MIN_NUM_FORMS": 1})
    for index, stage in enumerate(stages):
        row = {"required_approvals": 1, **stage}
        if isinstance(row["approver_group"], str):
            row["approver_group"] = group_id(row["approver_group"])
        data.update({f"stages-{index}-{name}": value for name, value in row.items() if value is not None})
    return data


def edit_form(entitlement: Entitlement, **fields: Any) -> dict[str, Any]:
    """The POST of the edit form as it loads for ``entitlement``, with ``fields`` changed."""
    stages = [
        {
            "order": stage.order,
            "name": stage.name,
            "approver_group": stage.approver_group_id,
            "required_approvals": stage.required_approvals,
            "deadline_seconds": stage.deadline_seconds,
        }
        for stage in entitlement.stages.order_by("order")
    ]
    loaded = {
        "slug": None,
        "name": entitlement.name,
        "description": entitlement.description,
        "purposes": entitlement.purposes,
        "default_duration_seconds": entitlement.default_duration_seconds,
        "max_duration_seconds": entitlement.max_duration_seconds,
        "pending_ttl_seconds": entitlement.pending_ttl_seconds,
    }
    data = policy_form(entitlement, stages=fields.pop("stages", stages), **{**loaded, **fields})
    data["stages-INITIAL_FORMS"] = entitlement.stages.count()
    return data


def config_state() -> tuple[int, int, int, int]:
    return (
        Entitlement.objects.count(),
        ApprovalStage.objects.count(),
        LogEntry.objects.count(),
        AuditEvent.objects.filter(action="config.changed").count(),
    )


def audit_head() -> int:
    return AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0


def config_changes(model: str, *, after: int) -> list[AuditEvent]:
    """The ``config.changed`` events of ``model`` written after event ``after`` (not the fixtures')."""
    events = AuditEvent.objects.filter(action="config.changed", target_type=model, seq__gt=after)
    return list(events.order_by("seq"))


# --- who may open the pages ---------------------------------------------------------------------

PAGES = [
    "/security/entitlements/",
    "/security/entitlements/new/",
    "/security/entitlements/{entitlement}/",
    "/security/grants/",
    "/security/grants/{grant}/revoke/",
    "/security/keyrings/",
    "/security/keyrings/{keyring}/",
]
POSTS = [
    "/security/entitlements/new/",
    "/security/entitlements/{entitlement}/",
    "/security/grants/{grant}/revoke/",
    "/security/keyrings/{keyring}/rotate/",
]


def test_anonymous_visitors_are_sent_to_sign_in(world):
    client = Client()
    for path in PAGES + POSTS:
        url = path.format(**world)
        response = client.post(url) if path in POSTS else client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/login/?next=/security/"), url
    assert Grant.objects.get(pk=world["grant"]).state == GrantState.ACTIVE


@pytest.mark.parametrize("role", ["requester", "legal1a", "auditor", "svc"])
def test_nobody_but_a_security_admin_opens_or_posts_to_them(cast, world, role):
    client = reauthenticated(cast[role])
    versions = KeyVersion.objects.count()

    for path in PAGES + POSTS:
        url = path.format(**world)
        response = client.post(url, {"reason": "x", "confirm": "on"}) if path in POSTS else client.get(url)
        assert response.status_code == 403, url
        assert text_of(elements(response, "p", **{"class": "lead"})[0]) == SECURITY_ADMINS_ONLY

    assert Grant.objects.get(pk=world["grant"]).state == GrantState.ACTIVE
    assert KeyVersion.objects.count() == versions


def test_the_pages_are_never_cached_and_answer_get_and_post_only(cast, world, secadmin):
    for path in PAGES:
        response = secadmin.get(path.format(**world))
        assert response.status_code == 200, path
        assert "no-store" in response["Cache-Control"], path
    assert secadmin.put("/security/grants/").status_code == 405
    assert secadmin.delete(f"/security/keyrings/{world['keyring']}/").status_code == 405
    assert secadmin.post("/security/grants/").status_code == 405  # a list takes no POST


def test_unknown_objects_are_the_404_page(secadmin, world):
    for path in ["/security/entitlements/999999/", "/security/grants/999999/revoke/", "/security/keyrings/999999/"]:
        assert secadmin.get(path).status_code == 404, path
    assert secadmin.post("/security/keyrings/999999/rotate/", {"confirm": "on"}).status_code == 404


def test_posts_without_a_csrf_token_are_refused(cast, world):
    client = Client(enforce_csrf_checks=True)
    client.force_login(cast["secadmin"])
    reauthenticated(cast["secadmin"], client=client)
    before = config_state()

    for path, data in [
        ("/security/grants/{grant}/revoke/", {"reason": "incident"}),
        ("/security/keyrings/{keyring}/rotate/", {"confirm": "on"}),
        ("/security/entitlements/new/", policy_form(Entitlement.objects.get(pk=world["entitlement"]))),
    ]:
        assert client.post(path.format(**world), data).status_code == 403, path

    assert Grant.objects.get(pk=world["grant"]).state == GrantState.ACTIVE
    assert KeyVersion.objects.filter(keyring_id=world["keyring"]).count() == 1
    assert config_state() == before
    # The same POST with the token the page's form carries goes through: the token was the reason.
    page = client.get("/security/grants/{grant}/revoke/".format(**world))
    token = elements(page, "input", name="csrfmiddlewaretoken")[-1].attrs["value"]
    response = client.post(
        "/security/grants/{grant}/revoke/".format(**world), {"reason": "incident", "csrfmiddlewaretoken": token}
    )
    assert response.status_code == 302
    assert Grant.objects.get(pk=world["grant"]).state == GrantState.REVOKED


# --- entitlements -------------------------------------------------------------------------------


def test_the_entitlement_list_shows_each_policy(secadmin, entitlement):
    Entitlement.objects.filter(pk=entitlement.pk).update(is_active=False)

    response = secadmin.get("/security/entitlements/")

    assert table_rows(response, "Entitlements") == [
        [
            "dkm-test",
            "DKM test",
            "dkm-test",
            "datacenter-admins",
            "1. Legal review: legal-l1, 1 approval 2. Legal sign-off: legal-l2, 1 approval",
            "8 h",
            "inactive",
        ]
    ]
    assert elements(response, "a", href=f"/security/entitlements/{entitlement.pk}/")


def test_a_security_admin_creates_an_entitlement_with_its_stages(cast, secadmin, entitlement):
    head = audit_head()

    response = secadmin.post("/security/entitlements/new/", policy_form(entitlement))

    assert response.status_code == 302
    assert response["Location"] == "/security/entitlements/"
    created = Entitlement.objects.get(slug="dkm-mail")
    assert (created.name, created.security_group, created.requester_group.name) == (
        "DKM mail accounts",
        entitlement.security_group,
        "datacenter-admins",
    )
    assert created.purposes == ["debugging", "auditing"]
    assert (created.default_duration_seconds, created.max_duration_seconds, created.pending_ttl_seconds) == (
        1800,
        7200,
        3600,
    )
    assert created.requires_ticket and created.is_active
    stages = [
        (s.order, s.name, s.approver_group.name, s.required_approvals, s.deadline_seconds)
        for s in created.stages.order_by("order")
    ]
    assert stages == [(1, "Legal review", "legal-l1", 2, None), (2, "Legal sign-off", "legal-l2", 1, 7200)]
    # django-auditlog's diffs became chained config.changed events, named after the admin.
    [changed] = config_changes("approvals.entitlement", after=head)
    assert (changed.actor_name, changed.target_id, changed.data["change"]) == ("secadmin", str(created.pk), "create")
    stage_events = config_changes("approvals.approvalstage", after=head)
    assert {e.target_id for e in stage_events} == {str(s.pk) for s in created.stages.all()}
    assert {e.actor_name for e in stage_events} == {"secadmin"}
    page = secadmin.get(response["Location"])
    assert text_of(elements(page, "li", **{"class": "message message--success"})[0]) == "Entitlement dkm-mail created."


def test_editing_changes_the_policy_and_stages_but_not_requests_in_flight(cast, secadmin, entitlement, pending):
    snapshot = pending.policy_snapshot
    page = secadmin.get(f"/security/entitlements/{entitlement.pk}/")
    assert "Requests in flight are not changed." in text_of(by_id(page, "in-flight-note"))
    assert "1 request is awaiting approval" in text_of(by_id(page, "in-flight-note"))
    assert "id_slug" not in page.content.decode()  # the slug is fixed
    stage_ids = list(entitlement.stages.order_by("order").values_list("pk", flat=True))
    data = edit_form(
        entitlement,
        max_duration_seconds=4 * 3600,
        stages=[
            {"order": 1, "name": "Legal review", "approver_group": group_id("legal-l1")},
            {"order": 2, "name": "Legal sign-off", "approver_group": group_id("legal-l2"), "required_approvals": 2},
            {"order": 3, "name": "Privacy officer", "approver_group": group_id("privacy"), "deadline_seconds": 3600},
        ],
    )
    data.pop("is_active")  # unticked: deactivated, not deleted
    head = audit_head()

    response = secadmin.post(f"/security/entitlements/{entitlement.pk}/", data)

    assert response.status_code == 302, response.content.decode()
    entitlement.refresh_from_db()
    assert entitlement.max_duration_seconds == 4 * 3600
    assert entitlement.is_active is False
    stages = [(s.pk, s.order, s.name, s.required_approvals) for s in entitlement.stages.order_by("order")]
    assert stages[:2] == [(stage_ids[0], 1, "Legal review", 1), (stage_ids[1], 2, "Legal sign-off", 2)]
    assert stages[2][1:] == (3, "Privacy officer", 1)
    pending.refresh_from_db()
    assert pending.policy_snapshot == snapshot
    assert [s["order"] for s in pending.policy_snapshot["stages"]] == [1, 2]
    [changed] = config_changes("approvals.entitlement", after=head)
    assert changed.data["change"] == "update"
    assert changed.data["fields"] == ["is_active", "max_duration_seconds"]
    assert changed.actor_name == "secadmin"
    stage_changes = {
        (e.target_id, e.data["change"], tuple(e.data["fields"]))
        for e in config_changes("approvals.approvalstage", after=head)
    }
    assert (str(stage_ids[1]), "update", ("required_approvals",)) in stage_changes
    assert len(stage_changes) == 2  # stage 1 was saved unchanged: no event
    listed = table_rows(secadmin.get("/security/entitlements/"), "Entitlements")[0]
    assert listed[6] == "inactive"
    assert listed[5] == "4 h"


def test_removing_a_stage_deletes_it_and_records_the_change(secadmin, entitlement):
    data = edit_form(entitlement)
    data["stages-1-DELETE"] = "on"
    removed = entitlement.stages.get(order=2)
    head = audit_head()

    response = secadmin.post(f"/security/entitlements/{entitlement.pk}/", data)

    assert response.status_code == 302
    assert list(entitlement.stages.values_list("order", flat=True)) == [1]
    [deleted] = config_changes("approvals.approvalstage", after=head)
    assert (deleted.target_id, deleted.data["change"]) == (str(removed.pk), "delete")


def _stages(*rows: tuple[int, str]) -> list[dict[str, Any]]:
    return [{"order": order, "name": f"Stage {order}", "approver_group": group} for order, group in rows]


INVALID = {
    "orders_repeated": (
        {"stages": _stages((1, "legal-l1"), (1, "legal-l2"))},
        "id_stages-1-order",
        "Order 1 is given to more than one stage; each needs its own.",
    ),
    "orders_with_a_gap": (
        {"stages": _stages((1, "legal-l1"), (3, "legal-l2"))},
        "id_stages-1-order",
        "Orders run 1, 2, 3, … without gaps; with 2 stages the highest is 2.",
    ),
    "orders_not_from_one": (
        {"stages": _stages((2, "legal-l1"))},
        "id_stages-0-order",
        "Orders run 1, 2, 3, … without gaps; with 1 stage the highest is 1.",
    ),
    "default_over_maximum": (
        {"default_duration_seconds": 7201},
        "id_default_duration_seconds",
        "The default cannot exceed the maximum duration (7200 seconds).",
    ),
    "no_purpose": ({"purposes": []}, "id_purposes", "Choose at least one purpose a request may give."),
    "requesters_approving": (
        {"stages": _stages((1, "legal-l1"), (2, "datacenter-admins"))},
        "id_stages-1-approver_group",
        "datacenter-admins requests this entitlement, so it cannot also approve it: "
        "requesters would approve each other's access.",
    ),
    "slug_taken": ({"slug": "dkm-test"}, "id_slug", "An entitlement with this slug already exists."),
    "stage_without_name": (
        {"stages": [{"order": 1, "name": "", "approver_group": "legal-l1"}]},
        "id_stages-0-name",
        "This field is required.",
    ),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_each_rule_re_shows_the_form_with_the_error_beside_the_field(secadmin, entitlement, case):
    fields, field_id, message = INVALID[case]
    data = policy_form(entitlement, **{k: v for k, v in fields.items() if k != "stages"}, stages=fields.get("stages"))
    before = config_state()

    response = secadmin.post("/security/entitlements/new/", data)

    assert response.status_code == 400
    assert error_beside(response, field_id) == message
    assert by_id(response, "form-problems")
    assert config_state() == before


def test_an_entitlement_keeps_at_least_one_stage(secadmin, entitlement):
    data = edit_form(entitlement)
    data["stages-0-DELETE"] = data["stages-1-DELETE"] = "on"
    before = config_state()

    response = secadmin.post(f"/security/entitlements/{entitlement.pk}/", data)

    assert response.status_code == 400
    assert text_of(by_id(response, "stages-errors")) == "An entitlement needs at least one approval stage."
    assert entitlement.stages.count() == 2
    assert config_state() == before


def test_the_role_groups_are_not_offered_as_requesters_or_approvers(secadmin, entitlement):
    response = secadmin.get("/security/entitlements/new/")

    offered = {text_of(option) for option in elements(response, "option")}
    assert {"datacenter-admins", "legal-l1", "legal-l2"} <= offered
    assert not offered & {"security-admins", "auditors"}


# --- key rings ----------------------------------------------------------------------------------


def test_the_key_ring_list_shows_metadata(secadmin, cast, keyring):
    make_secret(keyring, cast["secadmin"])

    response = secadmin.get("/security/keyrings/")

    [row] = table_rows(response, "Key rings")
    assert row[:5] == ["ring-pages", "dkm-test", "Service root key (local)", "1", "90 d"]
    assert row[5] == keyring.next_rotation_at.strftime("%Y-%m-%d %H:%M")
    assert row[6] == "1"


def test_a_key_ring_page_shows_versions_and_secret_names_but_never_key_material(cast, secadmin, keyring):
    secret = make_secret(keyring, cast["secadmin"], value="hunter2-super-secret")
    version = KeyVersion.objects.get(keyring=keyring)

    response = secadmin.get(f"/security/keyrings/{keyring.pk}/")

    facts = facts_of(response)
    assert facts["Primary version"] == "1"
    assert facts["Secrets"] == "1"
    assert facts["Security group"] == "dkm-test"
    assert [row[:2] + row[5:] for row in table_rows(response, "Key versions of ring-pages")] == [["1", "primary", "1"]]
    assert table_rows(response, "Secrets in ring-pages") == [
        ["mail-1", "Connected mail account", secret.updated_at.strftime("%Y-%m-%d %H:%M:%S")]
    ]
    page = response.content
    envelope = bytes(Secret.objects.get(pk=secret.pk).envelope)
    for material in [bytes(version.wrapped_key), bytes(version.check_value), envelope]:
        for encoded in [
            material,
            base64.b64encode(material),
            base64.urlsafe_b64encode(material),
            material.hex().encode(),
        ]:
            assert encoded not in page
    assert b"hunter2-super-secret" not in page


def test_rotate_now_makes_a_new_primary_and_audits_it(cast, secadmin, keyring):
    secret = make_secret(keyring, cast["secadmin"])

    response = secadmin.post(f"/security/keyrings/{keyring.pk}/rotate/", {"confirm": "on"})

    assert response.status_code == 302
    assert response["Location"] == f"/security/keyrings/{keyring.pk}/"
    states = dict(KeyVersion.objects.filter(keyring=keyring).values_list("version", "state"))
    assert states == {1: KeyState.ACTIVE, 2: KeyState.PRIMARY}
    [event] = recorded("key.rotated")
    assert (event.actor_name, event.target_id, event.data["to_version"]) == ("secadmin", "ring-pages", 2)
    page = secadmin.get(response["Location"])
    assert "version 2 is now primary" in text_of(elements(page, "li", **{"class": "message message--success"})[0])
    versions = table_rows(page, "Key versions of ring-pages")
    assert [row[:2] for row in versions] == [["2", "primary"], ["1", "active"]]
    v2_created = KeyVersion.objects.get(keyring=keyring, version=2).created_at.strftime("%Y-%m-%d %H:%M:%S")
    assert versions[1][3] == v2_created  # version 1 was rotated out when version 2 was made
    assert [versions[0][5], versions[1][5]] == ["0", "1"]  # the secret's data key waits for the rewrap
    assert bytes(KeyVersion.objects.get(keyring=keyring, version=2).wrapped_key) not in page.content
    assert Secret.objects.get(pk=secret.pk).key_version == 1


def test_rotate_now_needs_the_confirmation(secadmin, keyring):
    response = secadmin.post(f"/security/keyrings/{keyring.pk}/rotate/", {})

    assert response.status_code == 400
    assert error_beside(response, "id_confirm") == "Tick the box to confirm the rotation."
    assert KeyVersion.objects.filter(keyring=keyring).count() == 1
    assert recorded("key.rotated") == []


def test_rotate_now_without_a_recent_re_authentication_asks_for_one_and_does_nothing(cast, keyring):
    client = signed_in(cast["secadmin"])

    response = client.post(f"/security/keyrings/{keyring.pk}/rotate/", {"confirm": "on"})

    assert response.status_code == 302
    assert response["Location"] == reauth_page(f"/security/keyrings/{keyring.pk}/rotate/")
    assert KeyVersion.objects.filter(keyring=keyring).count() == 1
    assert recorded("key.rotated") == []
    # Coming back from the re-authentication lands on the ring's form.
    back = client.get(f"/security/keyrings/{keyring.pk}/rotate/")
    assert back["Location"] == f"/security/keyrings/{keyring.pk}/#rotate"


def test_rotate_now_says_so_when_the_root_key_provider_is_away(secadmin, keyring, monkeypatch):
    def unavailable(*args: Any, **kwargs: Any) -> Any:
        raise Unavailable("The key ring's root-key provider is unavailable: HSM offline")

    monkeypatch.setattr("keys.services.keyring_rotate", unavailable)

    response = secadmin.post(f"/security/keyrings/{keyring.pk}/rotate/", {"confirm": "on"})

    assert response.status_code == 503
    assert text_of(by_id(response, "rotate-problem")) == (
        "The key ring was not rotated. The key ring's root-key provider is unavailable: HSM offline"
    )
    assert KeyVersion.objects.filter(keyring=keyring).count() == 1


# --- active grants ------------------------------------------------------------------------------


def test_the_grant_list_shows_every_active_grant_newest_first_in_pages(cast, secadmin, entitlement, granted):
    services.grant_credential_mint(granted.grant, acting_user=cast["requester"])
    second = approve_through(submit(cast["admin2"], entitlement), cast["legal1b"], cast["legal2b"]).grant
    third = approve_through(submit(cast["requester"], entitlement), cast["legal1a"], cast["legal2"]).grant
    services.grant_revoke(third, acting_user=cast["secadmin"], reason="done")
    expired = approve_through(submit(cast["admin2"], entitlement), cast["legal1a"], cast["legal2b"]).grant
    now = clock.now()
    Grant.objects.filter(pk=expired.pk).update(starts_at=now - timedelta(hours=2), expires_at=now - timedelta(hours=1))

    response = secadmin.get("/security/grants/?page_size=1")

    rows = table_rows(response, "Active grants")
    assert [row[:4] for row in rows] == [[str(second.pk), "admin2", "dkm-test", "dkm-test"]]
    assert rows[0][6].endswith(" left") and rows[0][6].startswith("59 min")
    assert rows[0][7] == "not minted"
    older = elements(response, "a", **{"class": "button button--quiet"})
    older_link = [a.attrs["href"] for a in older if text_of(a) == "Older →"]
    assert older_link == [f"?page_size=1&before={second.pk}"]
    next_page = secadmin.get("/security/grants/" + older_link[0])
    assert [row[:2] + row[7:8] for row in table_rows(next_page, "Active grants")] == [
        [str(granted.grant.pk), "requester", "minted"]
    ]


def test_a_broken_page_link_is_refused_with_the_reason(secadmin, granted):
    response = secadmin.get("/security/grants/?before=abc")

    assert response.status_code == 400
    assert "before: Enter a whole number." in text_of(elements(response, "div", role="alert")[0])


def test_revoke_with_a_reason_ends_the_grant_and_audits_it(cast, secadmin, granted):
    grant = granted.grant
    services.grant_credential_mint(grant, acting_user=cast["requester"])

    response = secadmin.post(f"/security/grants/{grant.pk}/revoke/", {"reason": "  incident 7 closed  "})

    assert response.status_code == 302
    assert response["Location"] == "/security/grants/"
    grant.refresh_from_db()
    assert (grant.state, grant.end_reason, grant.ended_by) == (
        GrantState.REVOKED,
        "incident 7 closed",
        cast["secadmin"],
    )
    assert GrantCredential.objects.get(grant=grant).revoked_at is not None
    [event] = recorded("grant.revoked")
    assert (event.actor_name, event.grant_id, event.data["reason"]) == ("secadmin", grant.pk, "incident 7 closed")
    page = secadmin.get("/security/grants/")
    assert table_rows(page, "Active grants") == [["Nobody holds elevated access right now."]]
    assert "revoked; its credential no longer works" in text_of(
        elements(page, "li", **{"class": "message message--success"})[0]
    )


def test_revoke_needs_a_reason(secadmin, granted):
    grant = granted.grant

    response = secadmin.post(f"/security/grants/{grant.pk}/revoke/", {"reason": "   "})

    assert response.status_code == 400
    assert error_beside(response, "id_reason") == "Say why the grant is revoked; the reason goes into the audit trail."
    assert facts_of(response)["User"] == "requester"
    grant.refresh_from_db()
    assert grant.state == GrantState.ACTIVE
    assert recorded("grant.revoked") == []


def test_revoke_without_a_recent_re_authentication_asks_for_one_and_does_nothing(cast, granted):
    client = signed_in(cast["secadmin"])
    path = f"/security/grants/{granted.grant.pk}/revoke/"

    response = client.post(path, {"reason": "incident"})

    assert response["Location"] == reauth_page(path)
    assert Grant.objects.get(pk=granted.grant.pk).state == GrantState.ACTIVE
    assert recorded("grant.revoked") == []
    # The way back shows the grant and the reason form, with the reason typed before the detour.
    back = client.get(path)
    assert back.status_code == 200
    assert by_id(back, "id_reason").tag == "input"
    assert by_id(back, "id_reason").attrs.get("value") == "incident"
    # Once: a later visit starts blank.
    assert by_id(client.get(path), "id_reason").attrs.get("value") in (None, "")


def test_revoking_a_grant_that_expired_meanwhile_says_so(cast, secadmin, granted):
    grant = granted.grant
    now = clock.now()
    Grant.objects.filter(pk=grant.pk).update(starts_at=now - timedelta(hours=2), expires_at=now - timedelta(hours=1))

    response = secadmin.post(f"/security/grants/{grant.pk}/revoke/", {"reason": "incident"}, follow=True)

    assert response.status_code == 200
    assert response.redirect_chain == [("/security/grants/", 302)]
    [message] = elements(response, "li", **{"class": "message message--warning"})
    assert text_of(message).startswith(f"Grant {grant.pk} of requester had already expired at ")
    assert text_of(message).endswith("there was nothing left to revoke.")
    grant.refresh_from_db()
    assert grant.state == GrantState.EXPIRED
    assert recorded("grant.revoked") == []
    assert [e.outcome for e in recorded("grant.revoke_refused")] == ["denied"]
    # Its page says it is over and offers no form.
    page = secadmin.get(f"/security/grants/{grant.pk}/revoke/")
    assert "no longer active (expired)" in text_of(by_id(page, "grant-ended"))
    assert not elements(page, "input", name="reason")


def test_revoking_twice_says_it_was_already_revoked(cast, secadmin, granted):
    services.grant_revoke(granted.grant, acting_user=cast["secadmin"], reason="first")
    other = make_user("secadmin2", "security-admins")

    response = reauthenticated(other).post(
        f"/security/grants/{granted.grant.pk}/revoke/", {"reason": "second"}, follow=True
    )

    [message] = elements(response, "li", **{"class": "message message--info"})
    assert text_of(message) == f"Grant {granted.grant.pk} was already revoked by secadmin."
    assert Grant.objects.get(pk=granted.grant.pk).end_reason == "first"
    assert len(recorded("grant.revoked")) == 1


def test_swapping_two_stages_moves_them_without_clashing_orders(secadmin, entitlement):
    data = edit_form(
        entitlement,
        stages=[
            {"order": 2, "name": "Legal review", "approver_group": "legal-l1"},
            {"order": 1, "name": "Legal sign-off", "approver_group": "legal-l2"},
        ],
    )

    response = secadmin.post(f"/security/entitlements/{entitlement.pk}/", data)

    assert response.status_code == 302
    stages = [(s.order, s.name, s.approver_group.name) for s in entitlement.stages.order_by("order")]
    assert stages == [(1, "Legal sign-off", "legal-l2"), (2, "Legal review", "legal-l1")]


# --- the policy services themselves -------------------------------------------------------------


def _spec(entitlement: Entitlement, **changes: Any) -> PolicySpec:
    fields = {
        "name": entitlement.name,
        "security_group": entitlement.security_group,
        "requester_group": entitlement.requester_group,
        "purposes": entitlement.purposes,
        "default_duration_seconds": entitlement.default_duration_seconds,
        "max_duration_seconds": entitlement.max_duration_seconds,
    }
    return PolicySpec(**{**fields, **changes})


def _stage_specs(*groups: str) -> list[StageSpec]:
    return [
        StageSpec(order=order, name=f"Stage {order}", approver_group=Group.objects.get_or_create(name=group)[0])
        for order, group in enumerate(groups, start=1)
    ]


def test_the_policy_services_refuse_anyone_but_a_security_admin(cast, entitlement):
    before = config_state()

    for role in ["requester", "legal1a", "auditor", "svc"]:
        with pytest.raises(NotAllowed):
            entitlement_update(
                entitlement,
                policy=_spec(entitlement, max_duration_seconds=60),
                stages=_stage_specs("legal-l1"),
                acting_user=cast[role],
            )
        with pytest.raises(NotAllowed):
            entitlement_create(
                slug="other", policy=_spec(entitlement), stages=_stage_specs("legal-l1"), acting_user=cast[role]
            )

    assert config_state() == before


def test_the_policy_services_apply_the_rules_themselves(cast, entitlement):
    before = config_state()

    with pytest.raises(InvalidInput) as refused:
        entitlement_update(
            entitlement,
            policy=_spec(entitlement),
            stages=_stage_specs("legal-l1", "datacenter-admins"),
            acting_user=cast["secadmin"],
        )
    assert refused.value.field == "stages.1.approver_group"
    with pytest.raises(InvalidInput) as refused:
        entitlement_create(slug="x", policy=_spec(entitlement), stages=[], acting_user=cast["secadmin"])
    assert refused.value.field == "stages"
    with pytest.raises(InvalidInput) as refused:
        entitlement_create(
            slug="dkm-test", policy=_spec(entitlement), stages=_stage_specs("legal-l1"), acting_user=cast["secadmin"]
        )
    assert refused.value.field == "slug"

    assert config_state() == before


def test_a_policy_change_outside_a_web_request_still_names_its_actor(cast, entitlement):
    head = audit_head()

    entitlement_update(
        entitlement,
        policy=_spec(entitlement, name="DKM test, renamed"),
        stages=_stage_specs("legal-l1", "legal-l2"),
        acting_user=cast["secadmin"],
    )

    [changed] = config_changes("approvals.entitlement", after=head)
    assert (changed.actor_name, changed.data["fields"]) == ("secadmin", ["name"])
    stage_changes = config_changes("approvals.approvalstage", after=head)
    assert [(e.actor_name, e.data["fields"]) for e in stage_changes] == [("secadmin", ["name"])] * 2


def test_saving_a_policy_needs_a_fresh_reauthentication_and_keeps_what_was_typed(cast, entitlement):
    client = signed_in(cast["secadmin"])  # signed in, but not re-authenticated lately

    response = client.post("/security/entitlements/new/", policy_form(entitlement, name="Typed before the detour"))

    assert response.status_code == 302
    assert response["Location"] == "/account/reauth/?next=%2Fsecurity%2Fentitlements%2Fnew%2F"
    assert not Entitlement.objects.filter(slug="dkm-mail").exists()
    back = reauthenticated(cast["secadmin"], client=client).get("/security/entitlements/new/")
    assert elements(back, "input", name="name")[0].attrs["value"] == "Typed before the detour"
    # The draft is handed back once; the next visit shows an empty form.
    again = client.get("/security/entitlements/new/")
    assert elements(again, "input", name="name")[0].attrs.get("value", "") == ""
