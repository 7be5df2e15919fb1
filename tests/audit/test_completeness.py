"""Completeness, table-driven: every privileged action and decision writes exactly one event of
its kind, with actor, action, target, outcome, UTC time, client IP, correlation id and, when it
happened under a grant, the grant. Requests made while holding a grant add one
``grant.http_request`` event per active grant, which is part of the expectation here."""

from __future__ import annotations

import ast
import itertools
import pathlib
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.test import APIClient

from approvals import expiry
from approvals import services as approval_services
from approvals.models import AccessRequest, Grant, SecurityGroup
from jitaccess import clock
from jitaccess.accounts.reauth import REAUTH_SESSION_KEY
from jitaccess.audit.actions import KNOWN_ACTIONS
from jitaccess.audit.context import audit_context
from jitaccess.audit.models import AuditEvent
from jitaccess.webhooks import services as webhook_services
from jitaccess.webhooks.models import WebhookDelivery
from keys import services as key_services
from keys.models import KeyRing, KeyVersion
from tests.accounts.test_second_factor import totp_now
from tests.conftest import approve_through, submit
from tests.keys.conftest import make_secret

_ids = itertools.count(1)


@dataclass
class Expect:
    action: str
    actor: str = ""  # username; "" for the system
    target_type: str = ""
    target_id: Any = None  # None: any non-empty id
    grant: Any = None  # a Grant (or its id) the event must name; None: must name none
    outcome: str = "success"


@dataclass
class World:
    cast: dict[str, Any]
    entitlement: Any
    request_id: str = ""
    issued: list[str] = field(default_factory=list)  # every correlation id handed out

    def api(self, user: Any | None) -> APIClient:
        client = APIClient()
        if user is not None:
            client.force_authenticate(user=self.cast[user] if isinstance(user, str) else user)
        self.request_id = f"complete-{next(_ids):06d}"
        self.issued.append(self.request_id)
        client.credentials(HTTP_X_REQUEST_ID=self.request_id)
        return client

    def background(self) -> Any:
        self.request_id = f"job-{next(_ids):06d}"
        self.issued.append(self.request_id)
        return audit_context(correlation_id=self.request_id)


def _pending(w: World) -> AccessRequest:
    return submit(w.cast["requester"], w.entitlement)


def _granted(w: World) -> Grant:
    return approve_through(_pending(w), w.cast["legal1a"], w.cast["legal2"]).grant


def _secret(w: World) -> Any:
    keyring = KeyRing.objects.filter(name="ring-complete").first() or key_services.keyring_create(
        name="ring-complete", security_group=w.entitlement.security_group, acting_user=None
    )
    return make_secret(keyring, w.cast["secadmin"], name=f"mail-{next(_ids)}")


def _decide(w: World, who: str, request: AccessRequest, verb: str = "approve", **body: Any) -> Any:
    return w.api(who).post(f"/api/v1/requests/{request.pk}/{verb}/", body, format="json")


# --- the table: name → (act, expected events) ---------------------------------------------------


def case_submit(w):
    response = w.api("requester").post(
        "/api/v1/requests/",
        {"entitlement": w.entitlement.slug, "purpose": "debugging", "justification": "disk full", "ticket": "T-1"},
        format="json",
    )
    assert response.status_code == 201, response.content
    return [Expect("request.submitted", "requester", "access_request", response.json()["id"])]


def case_submit_refused(w):
    # The auditor sees the entitlement but is not in its requester group.
    response = w.api("auditor").post(
        "/api/v1/requests/",
        {"entitlement": w.entitlement.slug, "purpose": "debugging", "justification": "x", "ticket": "T-1"},
        format="json",
    )
    assert response.status_code == 403, response.content
    return [Expect("request.submit_refused", "auditor", "entitlement", w.entitlement.slug, outcome="denied")]


def case_first_stage_approval(w):
    request = _pending(w)
    assert _decide(w, "legal1a", request).status_code == 200
    return [
        Expect("decision.approved", "legal1a", "access_request", request.pk),
        Expect("request.stage_opened", "", "access_request", request.pk),
    ]


def case_self_approval(w):
    w.cast["requester"].groups.add(*w.cast["legal1a"].groups.all())
    request = _pending(w)
    assert _decide(w, "requester", request).status_code == 403
    return [Expect("decision.refused.self_approval", "requester", "access_request", request.pk, outcome="denied")]


def case_wrong_group(w):
    request = _pending(w)
    assert _decide(w, "legal2", request).status_code in (403, 404)
    return [Expect("decision.refused.not_in_stage_group", "legal2", "access_request", request.pk, outcome="denied")]


def case_wrong_stage(w):
    request = _pending(w)
    assert _decide(w, "legal1a", request, stage=2).status_code in (403, 409)
    return [Expect("decision.refused.stage_mismatch", "legal1a", "access_request", request.pk, outcome="denied")]


def case_second_stage_by_first_approver(w):
    w.cast["legal1a"].groups.add(*w.cast["legal2"].groups.all())
    request = approve_through(_pending(w), w.cast["legal1a"])
    assert _decide(w, "legal1a", request).status_code == 403
    return [Expect("decision.refused.already_decided", "legal1a", "access_request", request.pk, outcome="denied")]


def case_deny(w):
    request = _pending(w)
    assert _decide(w, "legal1a", request, "deny", comment="no ticket context").status_code == 200
    return [
        Expect("decision.denied", "legal1a", "access_request", request.pk),
        Expect("request.denied", "legal1a", "access_request", request.pk),
    ]


def case_final_approval_issues_the_grant(w):
    request = approve_through(_pending(w), w.cast["legal1a"])
    assert _decide(w, "legal2", request).status_code == 200
    grant = Grant.objects.get(request=request)
    return [
        Expect("decision.approved", "legal2", "access_request", request.pk),
        Expect("request.approved", "legal2", "access_request", request.pk),
        Expect("grant.issued", "legal2", "grant", grant.pk, grant=grant),
    ]


def case_withdraw(w):
    request = _pending(w)
    assert w.api("requester").post(f"/api/v1/requests/{request.pk}/withdraw/").status_code == 200
    return [Expect("request.withdrawn", "requester", "access_request", request.pk)]


def case_withdraw_refused(w):
    request = _pending(w)
    response = w.api("secadmin").post(f"/api/v1/requests/{request.pk}/withdraw/")
    assert response.status_code == 403, response.content
    return [Expect("request.withdraw_refused", "secadmin", "access_request", request.pk, outcome="denied")]


def case_mint_credential(w):
    grant = _granted(w)
    assert w.api("requester").post(f"/api/v1/grants/{grant.pk}/credential/").status_code == 201
    return [
        Expect("credential.minted", "requester", "grant_credential", None, grant=grant),
        Expect("grant.http_request", "requester", "http", f"POST /api/v1/grants/{grant.pk}/credential/", grant=grant),
    ]


def case_mint_refused(w):
    grant = _granted(w)
    response = w.api("secadmin").post(f"/api/v1/grants/{grant.pk}/credential/")
    assert response.status_code == 403, response.content
    return [Expect("credential.mint_refused", "secadmin", "grant", grant.pk, grant=grant, outcome="denied")]


def case_revoke(w):
    grant = _granted(w)
    assert w.api("secadmin").post(f"/api/v1/grants/{grant.pk}/revoke/", {"reason": "done"}).status_code == 200
    return [Expect("grant.revoked", "secadmin", "grant", grant.pk, grant=grant)]


def case_revoke_refused(w):
    grant = _granted(w)
    grant.state = "expired"
    grant.ended_at = clock.now()
    grant.save()
    response = w.api("requester").post(f"/api/v1/grants/{grant.pk}/revoke/")
    assert response.status_code == 409, response.content
    return [Expect("grant.revoke_refused", "requester", "grant", grant.pk, grant=grant, outcome="denied")]


def case_grantee_read(w):
    grant = _granted(w)
    assert w.api("requester").get("/api/v1/grants/").status_code == 200
    return [Expect("grant.http_request", "requester", "http", "GET /api/v1/grants/", grant=grant)]


def case_grant_expiry(w):
    grant = _granted(w)
    past = clock.now() - timedelta(seconds=1)
    Grant.objects.filter(pk=grant.pk).update(starts_at=past - timedelta(hours=1), expires_at=past)
    with w.background():
        expiry.expiry_sweep()
    return [Expect("grant.expired", "", "grant", grant.pk, grant=grant)]


def case_request_expiry(w):
    request = _pending(w)
    AccessRequest.objects.filter(pk=request.pk).update(pending_expires_at=clock.now() - timedelta(seconds=1))
    with w.background():
        expiry.expiry_sweep()
    return [Expect("request.expired", "", "access_request", request.pk)]


def case_reveal_under_grant(w):
    secret = _secret(w)
    grant = _granted(w)
    response = w.api("requester").post(f"/api/v1/secrets/{secret.pk}/reveal/", {"reason": "INC-1"}, format="json")
    assert response.status_code == 200, response.content
    return [
        Expect("secret.revealed", "requester", "secret", secret.pk, grant=grant),
        Expect("grant.http_request", "requester", "http", f"POST /api/v1/secrets/{secret.pk}/reveal/", grant=grant),
    ]


def case_reveal_refused(w):
    secret = _secret(w)
    response = w.api("admin2").post(f"/api/v1/secrets/{secret.pk}/reveal/", {"reason": "curious"}, format="json")
    assert response.status_code == 403, response.content
    return [Expect("secret.reveal_denied", "admin2", "secret", secret.pk, outcome="denied")]


def case_keyring_created(w):
    response = w.api("secadmin").post(
        "/api/v1/keyrings/", {"name": "ring-new", "security_group": w.entitlement.security_group.name}, format="json"
    )
    assert response.status_code == 201, response.content
    return [Expect("keyring.created", "secadmin", "keyring", None)]


def case_rotate(w):
    keyring = _secret(w).keyring
    assert w.api("secadmin").post(f"/api/v1/keyrings/{keyring.name}/rotate/").status_code == 200
    return [Expect("key.rotated", "secadmin", "keyring", None)]


def case_rewrap_archive_destroy(w):
    keyring = _secret(w).keyring
    key_services.keyring_rotate(keyring, acting_user=None)
    with w.background():
        key_services.keyring_rewrap(keyring)
        key_services.keyversions_archive_unreferenced(keyring)
        key_services.keyversion_destroy(
            KeyVersion.objects.get(keyring=keyring, version=1), acting_user=None, confirm_version=1
        )
    return [
        Expect("key.rewrapped", "", "keyring", None),
        Expect("key.archived", "", "keyring", None),
        Expect("key.destroyed", "", "keyring", None),
    ]


def case_secret_created_and_updated(w):
    keyring = _secret(w).keyring
    client = w.api("secadmin")
    created = client.post(
        "/api/v1/secrets/",
        {"name": "generic-1", "keyring": keyring.name, "kind": "generic", "metadata": {}, "value": "v1"},
        format="json",
    )
    assert created.status_code == 201, created.content
    secret_id = created.json()["id"]
    assert client.patch(f"/api/v1/secrets/{secret_id}/", {"value": "v2"}, format="json").status_code == 200
    return [
        Expect("secret.created", "secadmin", "secret", None),
        Expect("secret.updated", "secadmin", "secret", None),
    ]


def case_token_lifecycle(w):
    client = w.api(None)
    assert client.post("/api/v1/auth/token/", {"username": "admin2", "password": "wrong"}).status_code == 401
    issued = client.post("/api/v1/auth/token/", {"username": "admin2", "password": "pw-admin2"})
    assert issued.status_code == 201
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.json()['token']}", HTTP_X_REQUEST_ID=w.request_id)
    assert client.delete("/api/v1/auth/token/current/").status_code == 204
    return [
        Expect("auth.login_failed", "", "user", "admin2", outcome="denied"),
        Expect("auth.token_issued", "admin2", "api_token", None),
        Expect("auth.token_revoked", "admin2", "api_token", None),
    ]


def case_service_token_lifecycle(w):
    client = w.api("secadmin")
    created = client.post(
        "/api/v1/service-tokens/",
        {"account": "svc", "name": "backup job", "scopes": ["secrets:read"], "days": 7},
        format="json",
    )
    assert created.status_code == 201, created.content
    token_id = created.json()["id"]
    assert client.post(f"/api/v1/service-tokens/{token_id}/revoke/").status_code == 200
    return [
        Expect("auth.service_token_created", "secadmin", "service_token", token_id),
        Expect("auth.service_token_revoked", "secadmin", "service_token", token_id),
    ]


def case_webhook_lifecycle(w):
    client = w.api("secadmin")
    created = client.post(
        "/api/v1/webhooks/",
        {"name": "siem", "url": "https://siem.example.com/hook", "events": ["grant.issued"]},
        format="json",
    )
    assert created.status_code == 201, created.content
    pk = created.json()["id"]
    assert client.patch(f"/api/v1/webhooks/{pk}/", {"name": "siem-2"}, format="json").status_code == 200
    assert client.post(f"/api/v1/webhooks/{pk}/rotate-secret/").status_code == 200
    assert client.post(f"/api/v1/webhooks/{pk}/deactivate/").status_code == 200
    return [
        # The first endpoint makes the webhook key ring, and each signing secret is a secret of it.
        Expect("keyring.created", "", "keyring", settings.JIT_WEBHOOK_KEYRING),
        Expect("secret.created", "secadmin", "secret", None),
        Expect("webhook.created", "secadmin", "webhook", pk),
        Expect("webhook.updated", "secadmin", "webhook", pk),
        Expect("secret.updated", "secadmin", "secret", None),
        Expect("webhook.secret_rotated", "secadmin", "webhook", pk),
        Expect("webhook.deactivated", "secadmin", "webhook", pk),
    ]


def _webhook_delivery(w: World, **state: Any) -> Any:
    _, endpoint = webhook_services.endpoint_create(
        name="closed", url="http://127.0.0.1:9/", events=["request.submitted"], acting_user=w.cast["secadmin"]
    )
    _pending(w)
    WebhookDelivery.objects.filter(endpoint=endpoint).update(**state)
    return WebhookDelivery.objects.get(endpoint=endpoint)


def case_webhook_redelivered(w):
    delivery = _webhook_delivery(w, status="failed", attempts=8)
    assert w.api("secadmin").post(f"/api/v1/webhooks/deliveries/{delivery.pk}/redeliver/").status_code == 202
    return [Expect("webhook.redelivered", "secadmin", "webhook", delivery.endpoint_id)]


def case_webhook_delivery_failed(w):
    delivery = _webhook_delivery(w, attempts=settings.JIT_WEBHOOK_MAX_ATTEMPTS - 1)
    with w.background():
        assert webhook_services.delivery_attempt(delivery.pk, settings.JIT_WEBHOOK_MAX_ATTEMPTS) == "failed"
    return [Expect("webhook.delivery_failed", "", "webhook", delivery.endpoint_id)]


def case_browser_sign_in_and_out(w):
    w.api(None)
    client = Client(HTTP_X_REQUEST_ID=w.request_id)
    superuser = w.cast["secadmin"]
    superuser.is_staff = True
    superuser.save()
    client.post("/admin/login/", {"username": "secadmin", "password": "wrong"})
    response = client.post("/admin/login/?next=/admin/", {"username": "secadmin", "password": "pw-secadmin"})
    assert response.status_code == 302, response.content
    client.post("/admin/logout/")
    return [
        Expect("auth.login_failed", "", "user", "secadmin", outcome="denied"),
        Expect("auth.login", "secadmin", "user", "secadmin"),
        Expect("auth.logout", "secadmin", "user", "secadmin"),
    ]


def _browser(w, user=None):
    """A browser, signed in as ``user`` (force_login: no code asked) before the action starts."""
    client = Client()
    if user is not None:
        client.force_login(w.cast[user])
    w.api(None)
    client.defaults["HTTP_X_REQUEST_ID"] = w.request_id
    return client


def case_second_factor_enrolled(w):
    client = _browser(w, "requester")
    session = client.session
    session[REAUTH_SESSION_KEY] = {"user": w.cast["requester"].pk, "at": time.time()}  # asked first
    session.save()
    assert client.get("/account/two-factor/").status_code == 200
    device = TOTPDevice.objects.get(user=w.cast["requester"], confirmed=False)
    response = client.post("/account/two-factor/", {"confirm-code": totp_now(device)})
    assert response.status_code == 302, response.content
    return [Expect("auth.second_factor_enrolled", "requester", "user", "requester")]


def case_second_factor_removed(w):
    device = TOTPDevice.objects.create(user=w.cast["requester"], name="phone", confirmed=True)
    client = _browser(w, "requester")
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id  # a session verified with the code
    session.save()
    response = client.post("/account/two-factor/remove/", {"remove-code": totp_now(device)})
    assert response.status_code == 302, response.content
    return [Expect("auth.second_factor_removed", "requester", "user", "requester")]


def case_reauthentication(w):
    client = _browser(w, "legal1a")
    refused = client.post("/account/reauth/", {"password": "wrong"})
    assert refused.status_code == 400, refused.content
    accepted = client.post("/account/reauth/", {"password": "pw-legal1a"})
    assert accepted.status_code == 302, accepted.content
    return [
        Expect("auth.reauth_failed", "legal1a", "user", "legal1a", outcome="denied"),
        Expect("auth.reauthenticated", "legal1a", "user", "legal1a"),
    ]


def case_lockout(w):
    client = _browser(w)
    limit = settings.AXES_FAILURE_LIMIT
    codes = [client.post("/login/", {"username": "admin2", "password": "wrong"}).status_code for _ in range(limit)]
    assert codes == [200] * (limit - 1) + [429]
    # Locked: even the right password is refused, unchecked, and audited as a failure.
    assert client.post("/login/", {"username": "admin2", "password": "pw-admin2"}).status_code == 429
    return [Expect("auth.login_failed", "", "user", "admin2", outcome="denied")] * (limit + 1) + [
        Expect("auth.locked_out", "", "user", "admin2", outcome="denied")
    ]


def _reauthenticated_browser(w, user):
    client = _browser(w, user)
    session = client.session
    session[REAUTH_SESSION_KEY] = {"user": w.cast[user].pk, "at": time.time()}
    session.save()
    return client


def case_unlock(w):
    AccessAttempt.objects.create(
        username="admin2",
        ip_address="127.0.0.1",
        failures_since_start=settings.AXES_FAILURE_LIMIT,
        get_data="",
        post_data="",
    )
    client = _reauthenticated_browser(w, "secadmin")
    response = client.post(
        "/security/people/", {"action": "unlock", "unlock-username": "admin2", "unlock-reason": "desk call"}
    )
    assert response.status_code == 302, response.content
    return [Expect("auth.unlocked", "secadmin", "user", "admin2")]


def case_second_factor_reset(w):
    TOTPDevice.objects.create(user=w.cast["legal2"], name="lost phone", confirmed=True)
    client = _reauthenticated_browser(w, "secadmin")
    response = client.post("/security/people/", {"action": "reset", "reset-username": "legal2", "reset-reason": "lost"})
    assert response.status_code == 302, response.content
    return [Expect("auth.second_factor_reset", "secadmin", "user", "legal2")]


def case_config_change_in_the_admin(w):
    admin = w.cast["secadmin"]
    admin.is_superuser = admin.is_staff = True
    admin.save()
    group = SecurityGroup.objects.get(pk=w.entitlement.security_group.pk)
    client = Client()
    client.force_login(admin)
    w.api(None)
    client.defaults["HTTP_X_REQUEST_ID"] = w.request_id
    inline = "standing"  # the standing-membership inline's formset prefix, unchanged
    response = client.post(
        f"/admin/approvals/securitygroup/{group.pk}/change/",
        {
            "name": group.name,
            "description": "now documented",
            f"{inline}-TOTAL_FORMS": "0",
            f"{inline}-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content
    return [Expect("config.changed", "secadmin", "approvals.securitygroup", group.pk)]


def case_standing_member_added(w):
    from tests.conftest import make_user

    robot = make_user("svc-new", is_service_account=True)
    with w.background():
        approval_services.standing_member_add(w.entitlement.security_group, user=robot, acting_user=w.cast["secadmin"])
    return [Expect("security_group.member_added", "secadmin", "security_group", w.entitlement.security_group.pk)]


CASES: dict[str, Callable[[World], list[Expect]]] = {
    name.removeprefix("case_"): fn for name, fn in sorted(globals().items()) if name.startswith("case_")
}

# Bookkeeping events of the set-up, never the action under test.
_NOT_THE_ACTION = {"config.changed"}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_action_writes_exactly_one_event_with_the_required_fields(cast, entitlement, case):
    world = World(cast, entitlement)
    act = CASES[case]
    # Set-up runs inside the case; only events from the acting call on are looked at.
    before_seq = [0]

    def head() -> int:
        return AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0

    real_api, real_background = world.api, world.background

    def api(user):  # the first call to act marks where the action starts
        before_seq[0] = before_seq[0] or head()
        return real_api(user)

    def background():
        before_seq[0] = before_seq[0] or head()
        return real_background()

    world.api, world.background = api, background
    started = clock.now()
    expected = act(world)
    finished = clock.now()
    events = list(AuditEvent.objects.filter(seq__gt=before_seq[0]).order_by("seq"))
    if case != "config_change_in_the_admin":
        events = [e for e in events if e.action not in _NOT_THE_ACTION]

    assert Counter(e.action for e in events) == Counter(x.action for x in expected), [e.action for e in events]
    http = not case.startswith(("grant_expiry", "request_expiry", "rewrap", "standing", "webhook_delivery_failed"))
    for want in expected:
        event = next(e for e in events if e.action == want.action)
        assert event.actor_name == want.actor, (want.action, event.actor_name)
        assert event.target_type == want.target_type, want.action
        if want.target_id is not None:
            assert event.target_id == str(want.target_id), want.action
        else:
            assert event.target_id, want.action
        expected_grant = getattr(want.grant, "pk", want.grant)
        assert event.grant_id == expected_grant, want.action
        assert event.outcome == want.outcome, want.action
        assert started <= event.at <= finished and event.at.utcoffset() == timedelta(0)
        assert event.correlation_id in world.issued, want.action
        assert event.ip == ("127.0.0.1" if http else None), want.action


def test_every_action_the_code_records_is_a_known_action():
    """Filters refuse unknown actions, so every literal action in the code must be listed."""
    root = pathlib.Path(__file__).resolve().parents[2]
    found: set[str] = set()
    for path in itertools.chain(*(root.joinpath(app).rglob("*.py") for app in ("approvals", "keys", "jitaccess"))):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in (
                "audit_record",
                "_refused",
                "record",
                "session_event_record",
            ):
                for arg in node.args[:2]:
                    if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and "." in arg.value:
                        found.add(arg.value)
    assert found, "the walk found no audit calls"
    assert found - KNOWN_ACTIONS == set()


def test_the_table_covers_every_known_action_but_the_auditors_own():
    covered: set[str] = set()
    # The names each case promises, read from its source rather than by running it.
    for fn in CASES.values():
        for node in ast.walk(ast.parse(pathlib.Path(__file__).read_text())):
            if isinstance(node, ast.FunctionDef) and node.name == fn.__name__:
                for call in ast.walk(node):
                    if isinstance(call, ast.Call) and getattr(call.func, "id", "") == "Expect":
                        covered.add(call.args[0].value)
    auditors_own = {"audit.exported", "audit.evidence_exported", "audit.report_exported"}  # tests/audit/test_export.py
    rare_refusals = {
        "decision.refused.not_pending",
        "decision.refused.request_expired",
        "decision.refused.digest_invalid",
        "decision.refused.digest_mismatch",
        "security_group.member_removed",
        "keyring.policy_changed",
        "secret.reveal_failed",
    }  # each asserted one-per-attempt in tests/approvals and tests/keys
    # Single sign-on needs its local provider: tests/accounts/test_oidc.py asserts these.
    single_sign_on = {"auth.user_created", "auth.identity_linked", "auth.groups_synced"}
    assert KNOWN_ACTIONS - covered - auditors_own - rare_refusals - single_sign_on == set()
