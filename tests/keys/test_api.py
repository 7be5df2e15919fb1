"""The keys API through its public surface (docs API.md, "Keys and secrets"): key rings, rotation,
secrets as metadata, reveal and its audit trail, the grant credential's scope, and the meta schema.
Every test asserts the status code and what it left in the database."""

from __future__ import annotations

import base64
import json
import secrets as random
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection
from django.db.models import Max
from django.test.utils import CaptureQueriesContext
from django.utils.dateparse import parse_datetime
from rest_framework.test import APIClient

from approvals.models import Entitlement, Grant, SecurityGroup
from jitaccess import clock, roles
from jitaccess.accounts.services import api_token_create
from jitaccess.audit.models import AuditEvent
from keys import services
from keys.models import KeyRing, KeyState, KeyVersion, Secret
from tests.conftest import approve_through, as_user, make_entitlement, submit
from tests.keys.conftest import make_secret

API = "/api/v1"
VALUE = "s3cret-value"  # what tests.keys.conftest.make_secret seals by default
REASON = {"reason": "INC-1001: mailbox sync failing for tenant 42"}
DAY = 24 * 3600

KEYRING_FIELDS = {"name", "security_group", "provider", "rotation_period_seconds", "primary_version", "versions"}
VERSION_FIELDS = {"version", "state", "created_at"}
SECRET_FIELDS = {"id", "name", "keyring", "kind", "metadata", "key_version", "created_at", "updated_at"}
KEY_MATERIAL = ("wrapped_key", "envelope", "check_value")
MAILBOX = {"provider": "gmail", "account_address": "ops@example.test", "credential_type": "password"}


# --- helpers ------------------------------------------------------------------------------------


def client_for(user: Any) -> APIClient:
    return as_user(APIClient(), user)


def post(user: Any, url: str, data: Any = None) -> Any:
    return client_for(user).post(url, {} if data is None else data, format="json")


def patch(user: Any, url: str, data: Any) -> Any:
    return client_for(user).patch(url, data, format="json")


def get(user: Any, url: str, **params: Any) -> Any:
    return client_for(user).get(url, params)


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def secret_url(secret: Secret | int, action: str = "") -> str:
    pk = getattr(secret, "pk", secret)
    return f"{API}/secrets/{pk}/" + (f"{action}/" if action else "")


def reveal(user: Any, secret: Secret | int, body: Any = None) -> Any:
    return post(user, secret_url(secret, "reveal"), REASON if body is None else body)


def last_seq() -> int:
    return AuditEvent.objects.aggregate(last=Max("seq"))["last"] or 0


def events_since(seq: int) -> list[AuditEvent]:
    # The per-request record of a grantee's calls is tested in tests/audit/test_completeness.py.
    return list(AuditEvent.objects.filter(seq__gt=seq).exclude(action="grant.http_request").order_by("seq"))


def assert_nothing_secret_in(response: Any, *values: str, echoed: str = "") -> None:
    """No value and no key material in the answer, by name or by content.

    ``echoed``: a key-material field name the client itself sent, which the error may name.
    """
    text = response.content.decode()
    for value in values:
        assert value not in text
    for name in KEY_MATERIAL:
        assert name == echoed or name not in text
    for stored in Secret.objects.values_list("envelope", flat=True):
        raw = bytes(stored)
        assert raw.hex() not in text and base64.b64encode(raw).decode() not in text
    for stored in KeyVersion.objects.exclude(wrapped_key=None).values_list("wrapped_key", flat=True):
        raw = bytes(stored)
        assert raw.hex() not in text and base64.b64encode(raw).decode() not in text


def results(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) >= {"results", "next"}
    return body["results"]


def keys_state() -> list[tuple[Any, ...]]:
    return list(KeyVersion.objects.order_by("keyring_id", "version").values_list("keyring_id", "version", "state"))


def snapshot() -> tuple[Any, ...]:
    """Key rings, key versions and secrets (the envelope's bytes included): what no refusal may change."""
    secrets = Secret.objects.order_by("pk").values_list(
        "pk", "name", "keyring_id", "kind", "metadata", "envelope", "key_version", "value_version"
    )
    return (
        list(KeyRing.objects.order_by("pk").values_list("pk", "name", "rotation_period_seconds", "rotated_at")),
        keys_state(),
        [(*row[:5], bytes(row[5]), *row[6:]) for row in secrets],
    )


def secret_body(**changes: Any) -> dict[str, Any]:
    body = {"name": "mail-2", "keyring": "ring-test", "kind": "connected_account", "metadata": MAILBOX, "value": "v"}
    for name, value in changes.items():
        if value is DROP:
            body.pop(name)
        else:
            body[name] = value
    return body


DROP = object()


def fresh(user: Any) -> Any:
    """The user re-read, so no role cached on the object outlives a change of groups."""
    return get_user_model().objects.get(pk=user.pk)


@pytest.fixture
def other(cast: dict[str, Any], entitlement: Entitlement) -> dict[str, Any]:
    """A second security group with its own entitlement, key ring and secret."""
    group = SecurityGroup.objects.create(name="dkm-other", description="another group")
    other_entitlement = make_entitlement(group, "dkm-other", "DKM other")
    ring = services.keyring_create(name="ring-other", security_group=group, acting_user=None)
    secret = make_secret(ring, cast["secadmin"], name="other-mail", value="other-s3cret-value")
    return {"entitlement": other_entitlement, "keyring": ring, "secret": secret}


# --- key rings ----------------------------------------------------------------------------------


def test_it_lists_keyrings_in_the_contract_shape(cast, keyring, secret):
    response = get(cast["secadmin"], f"{API}/keyrings/")

    [row] = results(response)
    assert response.json()["next"] is None
    assert KEYRING_FIELDS <= set(row)
    assert {name: row[name] for name in KEYRING_FIELDS - {"versions"}} == {
        "name": "ring-test",
        "security_group": "dkm-test",
        "provider": "local",
        "rotation_period_seconds": 90 * DAY,
        "primary_version": 1,
    }
    [version] = row["versions"]
    assert VERSION_FIELDS <= set(version)
    assert (version["version"], version["state"]) == (1, "primary")
    assert parse_datetime(version["created_at"]) == KeyVersion.objects.get(keyring=keyring).created_at
    assert_nothing_secret_in(response, VALUE)


def test_it_shows_one_keyring_by_name(cast, keyring):
    response = get(cast["svc"], f"{API}/keyrings/ring-test/")

    assert response.status_code == 200, response.content
    body = response.json()
    assert KEYRING_FIELDS <= set(body)
    assert (body["name"], body["security_group"], body["primary_version"]) == ("ring-test", "dkm-test", 1)
    assert_nothing_secret_in(response)
    assert get(cast["svc"], f"{API}/keyrings/no-such-ring/").status_code == 404


@pytest.mark.parametrize(
    "who, visible",
    [
        ("secadmin", ["ring-other", "ring-test"]),
        ("auditor", ["ring-other", "ring-test"]),
        ("svc", ["ring-test"]),  # standing member of dkm-test only
        ("requester", ["ring-other", "ring-test"]),  # may request both entitlements
        ("legal1a", ["ring-other", "ring-test"]),  # approves both
        ("outsider", []),
    ],
)
def test_it_lists_only_the_keyrings_the_caller_may_see(cast, keyring, other, who, visible):
    assert sorted(row["name"] for row in results(get(cast[who], f"{API}/keyrings/"))) == visible
    for name in ["ring-test", "ring-other"]:
        expected = 200 if name in visible else 404
        assert get(cast[who], f"{API}/keyrings/{name}/").status_code == expected, name


def test_it_paginates_keyrings_with_a_cursor(cast, keyring, security_group):
    for n in range(2):
        services.keyring_create(name=f"ring-{n}", security_group=security_group, acting_user=None)

    first = get(cast["secadmin"], f"{API}/keyrings/", page_size=2).json()
    assert len(first["results"]) == 2 and first["next"]
    second = client_for(cast["secadmin"]).get(first["next"]).json()

    assert second["next"] is None
    names = [row["name"] for row in first["results"] + second["results"]]
    assert sorted(names) == ["ring-0", "ring-1", "ring-test"]


def test_it_creates_a_keyring_for_a_security_admin(cast, entitlement):
    response = post(
        cast["secadmin"],
        f"{API}/keyrings/",
        {"name": "ring-new", "security_group": "dkm-test", "rotation_period_seconds": 7200},
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert KEYRING_FIELDS <= set(body)
    assert (body["name"], body["security_group"], body["provider"], body["rotation_period_seconds"]) == (
        "ring-new",
        "dkm-test",
        "local",
        7200,
    )
    assert body["primary_version"] == 1
    assert [(v["version"], v["state"]) for v in body["versions"]] == [(1, "primary")]
    assert_nothing_secret_in(response)
    ring = KeyRing.objects.get(name="ring-new")
    assert ring.security_group.name == "dkm-test"
    assert list(ring.versions.values_list("version", "state")) == [(1, KeyState.PRIMARY)]
    assert (
        AuditEvent.objects.filter(action="keyring.created", actor=cast["secadmin"], target_id="ring-new").count() == 1
    )


@pytest.mark.parametrize("who", ["requester", "svc", "auditor", "legal1a", "outsider"])
def test_it_refuses_keyring_creation_to_everyone_but_security_admins(cast, entitlement, who):
    response = post(cast[who], f"{API}/keyrings/", {"name": "ring-new", "security_group": "dkm-test"})

    assert response.status_code == 403, response.content
    assert not KeyRing.objects.exists()
    assert not KeyVersion.objects.exists()


@pytest.mark.parametrize(
    "body, field",
    [
        ({"name": "ring-new", "security_group": "dkm-test", "provider": "vault"}, "provider"),
        ({"name": "ring-new", "security_group": "dkm-test", "provider": "pkcs11"}, "provider_key"),
        ({"name": "ring-new", "security_group": "dkm-test", "provider": "pkcs11", "provider_key": ""}, "provider_key"),
        (
            {"name": "ring-new", "security_group": "dkm-test", "rotation_period_seconds": 3599},
            "rotation_period_seconds",
        ),
        ({"name": "ring-new", "security_group": "dkm-test", "rotation_period_seconds": 0}, "rotation_period_seconds"),
        ({"name": "ring-new", "security_group": "dkm-test", "rotation_period_seconds": "x"}, "rotation_period_seconds"),
        ({"name": "ring-new", "security_group": "no-such-group"}, "security_group"),
        ({"name": "ring-new", "security_group": "dkm\u0000test"}, "security_group"),
        ({"name": "ring-new", "security_group": 7}, "security_group"),
        ({"name": "ring-new"}, "security_group"),
        ({"name": "ring-test", "security_group": "dkm-test"}, "name"),
        ({"name": "ring new!", "security_group": "dkm-test"}, "name"),
        ({"security_group": "dkm-test"}, "name"),
        ({"name": "ring-new", "security_group": "dkm-test", "wrapped_key": "AAAA"}, "wrapped_key"),
    ],
    ids=[
        "unknown provider",
        "pkcs11 without provider_key",
        "pkcs11 with a blank provider_key",
        "rotation period just below an hour",
        "rotation period zero",
        "rotation period not a number",
        "unknown security group",
        "security group with a NUL character",
        "security group not a string",
        "missing security group",
        "duplicate name",
        "name not a slug",
        "missing name",
        "client-sent key material",
    ],
)
def test_it_refuses_bad_keyring_input_naming_the_field_and_stores_nothing(cast, keyring, body, field):
    before, events_before = snapshot(), last_seq()

    response = post(cast["secadmin"], f"{API}/keyrings/", body)

    assert response.status_code == 400, response.content
    assert field in response.json()["errors"]
    assert field in response.json()["detail"]
    assert snapshot() == before
    assert events_since(events_before) == []


# --- rotation -----------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["secadmin", "svc"])
def test_it_rotates_for_security_admins_and_the_rings_service_account(cast, keyring, secret, who):
    response = post(cast[who], f"{API}/keyrings/ring-test/rotate/")

    assert response.status_code == 200, response.content
    body = response.json()
    assert KEYRING_FIELDS <= set(body)
    assert body["primary_version"] == 2
    assert sorted((v["version"], v["state"]) for v in body["versions"]) == [(1, "active"), (2, "primary")]
    assert_nothing_secret_in(response, VALUE)
    assert keys_state() == [(keyring.pk, 1, KeyState.ACTIVE), (keyring.pk, 2, KeyState.PRIMARY)]
    assert AuditEvent.objects.filter(action="key.rotated", actor=cast[who], target_id="ring-test").count() == 1

    again = post(cast[who], f"{API}/keyrings/ring-test/rotate/")
    assert again.status_code == 200
    assert again.json()["primary_version"] == 3
    # The secret sealed under version 1 still opens after two rotations.
    assert reveal(cast["svc"], secret).json()["value"] == VALUE


@pytest.mark.parametrize(
    "who, status",
    [("requester", 403), ("admin2", 403), ("auditor", 403), ("legal1a", 403), ("outsider", 404)],
)
def test_it_refuses_rotation_to_everyone_else_and_rotates_nothing(cast, keyring, who, status):
    before = snapshot()

    response = post(cast[who], f"{API}/keyrings/ring-test/rotate/")

    assert response.status_code == status, response.content
    assert snapshot() == before
    assert not AuditEvent.objects.filter(action="key.rotated").exists()


def test_it_refuses_to_rotate_a_ring_the_service_account_does_not_serve(cast, keyring, other):
    before = snapshot()

    assert post(cast["svc"], f"{API}/keyrings/ring-other/rotate/").status_code == 404
    assert post(cast["secadmin"], f"{API}/keyrings/no-such-ring/rotate/").status_code == 404
    assert snapshot() == before


# --- secrets: metadata --------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["secadmin", "auditor", "svc", "requester", "legal1a"])
def test_it_lists_secrets_as_metadata_only(cast, secret, who):
    response = get(cast[who], f"{API}/secrets/")

    [row] = results(response)
    assert response.json()["next"] is None
    assert SECRET_FIELDS <= set(row)
    assert {name: row[name] for name in SECRET_FIELDS - {"created_at", "updated_at", "metadata"}} == {
        "id": secret.pk,
        "name": "mail-1",
        "keyring": "ring-test",
        "kind": "connected_account",
        "key_version": 1,
    }
    assert row["metadata"] == {**MAILBOX, "username": "ops@example.test"}
    assert parse_datetime(row["created_at"]) == secret.created_at
    assert parse_datetime(row["updated_at"]) == secret.updated_at
    assert_nothing_secret_in(response, VALUE)


def test_it_shows_one_secret_as_metadata_only(cast, secret):
    response = get(cast["requester"], secret_url(secret))

    assert response.status_code == 200, response.content
    body = response.json()
    assert SECRET_FIELDS <= set(body)
    assert (body["id"], body["name"], body["keyring"]) == (secret.pk, "mail-1", "ring-test")
    assert_nothing_secret_in(response, VALUE)


def test_it_lists_only_the_secrets_of_rings_the_caller_may_see(cast, secret, other):
    assert [row["id"] for row in results(get(cast["svc"], f"{API}/secrets/"))] == [secret.pk]
    assert get(cast["svc"], secret_url(other["secret"])).status_code == 404
    everything = results(get(cast["auditor"], f"{API}/secrets/"))
    assert sorted(row["id"] for row in everything) == sorted([secret.pk, other["secret"].pk])


def test_it_paginates_secrets_with_a_cursor(cast, keyring):
    made = [make_secret(keyring, cast["secadmin"], name=f"mail-{n}", value=f"value-{n}").pk for n in range(3)]

    first = get(cast["svc"], f"{API}/secrets/", page_size=2).json()
    assert len(first["results"]) == 2 and first["next"]
    second = client_for(cast["svc"]).get(first["next"]).json()

    assert second["next"] is None
    assert sorted(row["id"] for row in first["results"] + second["results"]) == made


def test_it_filters_secrets_by_keyring_and_name(cast, secret, other):
    by_ring = results(get(cast["auditor"], f"{API}/secrets/", keyring="ring-other"))
    by_name = results(get(cast["auditor"], f"{API}/secrets/", name="mail-1"))

    assert [row["id"] for row in by_ring] == [other["secret"].pk]
    assert [row["id"] for row in by_name] == [secret.pk]


@pytest.mark.parametrize("name, value", [("kind", "password"), ("cursor", "not-a-cursor")])
def test_it_refuses_an_unknown_filter_value_naming_the_filter(cast, secret, name, value):
    response = get(cast["secadmin"], f"{API}/secrets/", **{name: value})

    assert response.status_code == 400, response.content
    assert name in response.json()["errors"]


# --- secrets: create ----------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["secadmin", "svc"])
def test_it_creates_a_secret_and_answers_with_metadata_only(cast, keyring, who):
    value = random.token_hex(16)

    response = post(cast[who], f"{API}/secrets/", secret_body(value=value))

    assert response.status_code == 201, response.content
    body = response.json()
    assert SECRET_FIELDS <= set(body)
    assert (body["name"], body["keyring"], body["kind"], body["key_version"]) == (
        "mail-2",
        "ring-test",
        "connected_account",
        1,
    )
    assert body["metadata"] == {**MAILBOX, "username": "ops@example.test"}
    assert_nothing_secret_in(response, value)
    stored = Secret.objects.get(pk=body["id"])
    assert (stored.name, stored.keyring, stored.created_by) == ("mail-2", keyring, cast[who])
    assert value.encode() not in bytes(stored.envelope)
    assert AuditEvent.objects.filter(action="secret.created", actor=cast[who], target_id=str(stored.pk)).count() == 1
    assert reveal(cast["svc"], stored).json()["value"] == value


def test_it_creates_a_generic_secret_with_free_metadata(cast, keyring):
    response = post(
        cast["secadmin"],
        f"{API}/secrets/",
        secret_body(kind="generic", metadata={"system": "billing", "rotates": True}, value="x y z"),
    )

    assert response.status_code == 201, response.content
    assert response.json()["metadata"] == {"system": "billing", "rotates": True}
    assert reveal(cast["svc"], response.json()["id"]).json()["value"] == "x y z"


@pytest.mark.parametrize("who", ["requester", "admin2", "auditor", "legal1a"])
def test_it_refuses_secret_creation_to_those_who_only_read(cast, keyring, who):
    response = post(cast[who], f"{API}/secrets/", secret_body(value="never-stored-value"))

    assert response.status_code == 403, response.content
    assert not Secret.objects.exists()
    assert not AuditEvent.objects.filter(action="secret.created").exists()


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"keyring": "no-such-ring"}, "keyring"),
        ({"keyring": DROP}, "keyring"),
        ({"keyring": 7}, "keyring"),
        ({"kind": "password"}, "kind"),
        ({"kind": DROP}, "kind"),
        ({"value": ""}, "value"),
        ({"value": "   \n\t"}, "value"),
        ({"value": None}, "value"),
        ({"value": DROP}, "value"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "mail-1"}, "name"),
        ({"metadata": ["provider", "gmail"]}, "metadata"),
        ({"metadata": "gmail"}, "metadata"),
        ({"metadata": 42}, "metadata"),
        ({"kind": "generic", "metadata": {"password": "hunter2"}}, "metadata"),
        ({"kind": "generic", "metadata": {"Token": "abc"}}, "metadata"),
        ({"kind": "generic", "metadata": {"nested": {"a": 1}}}, "metadata"),
        ({"metadata": {**MAILBOX, "password": "hunter2"}}, "metadata"),
        ({"metadata": {k: v for k, v in MAILBOX.items() if k != "provider"}}, "metadata"),
        ({"metadata": {k: v for k, v in MAILBOX.items() if k != "account_address"}}, "metadata"),
        ({"metadata": {k: v for k, v in MAILBOX.items() if k != "credential_type"}}, "metadata"),
        ({"metadata": {**MAILBOX, "account_address": "not-an-e-mail"}}, "metadata"),
        ({"metadata": {**MAILBOX, "provider": "hotmail"}}, "metadata"),
        ({"metadata": {**MAILBOX, "credential_type": "pin"}}, "metadata"),
        ({"metadata": {**MAILBOX, "colour": "blue"}}, "metadata"),
        ({"envelope": "AAAA"}, "envelope"),
        ({"key_version": 9}, "key_version"),
        ({"created_by": "secadmin"}, "created_by"),
    ],
    ids=[
        "unknown keyring",
        "missing keyring",
        "keyring not a name",
        "unknown kind",
        "missing kind",
        "empty value",
        "blank value",
        "null value",
        "missing value",
        "empty name",
        "blank name",
        "duplicate name in the ring",
        "metadata a list",
        "metadata a string",
        "metadata a number",
        "metadata with a password key",
        "metadata with a token key in another case",
        "metadata nested",
        "connected account metadata with a password",
        "connected account without provider",
        "connected account without account_address",
        "connected account without credential_type",
        "connected account with a bad e-mail",
        "connected account with an unknown mail provider",
        "connected account with an unknown credential type",
        "connected account with an unknown field",
        "client-sent envelope",
        "client-sent key_version",
        "client-sent created_by",
    ],
)
def test_it_refuses_bad_secret_input_naming_the_field_and_stores_nothing(cast, secret, changes, field):
    before, events_before = snapshot(), last_seq()
    value = "marker-" + random.token_hex(8)
    body = secret_body(**{"value": value, **changes})

    response = post(cast["svc"], f"{API}/secrets/", body)

    assert response.status_code == 400, response.content
    assert field in response.json()["errors"]
    assert field in response.json()["detail"]
    assert_nothing_secret_in(response, value, VALUE, echoed=field)
    assert snapshot() == before
    assert events_since(events_before) == []


@pytest.mark.parametrize("key", ["access_token", "client_secret", "api_key", "db_password", "private_key"])
def test_it_refuses_generic_metadata_keys_that_name_a_secret(cast, keyring, key):
    # Metadata is stored and shown in clear: a key that says it holds a secret is refused,
    # not only the exact words "password", "token" and so on.
    response = post(cast["secadmin"], f"{API}/secrets/", secret_body(kind="generic", metadata={key: "sk-live-123"}))

    assert response.status_code == 400, response.content
    assert "metadata" in response.json()["errors"]
    assert not Secret.objects.exists()


def test_it_treats_a_keyring_the_caller_cannot_see_as_unknown(cast, keyring, other):
    hidden = post(cast["svc"], f"{API}/secrets/", secret_body(keyring="ring-other", value="v1"))
    made_up = post(cast["svc"], f"{API}/secrets/", secret_body(keyring="ring-nope1", value="v1"))

    assert hidden.status_code == made_up.status_code == 400
    assert hidden.json() == json.loads(json.dumps(made_up.json()).replace("ring-nope1", "ring-other"))
    assert list(Secret.objects.values_list("pk", flat=True)) == [other["secret"].pk]


def test_it_allows_the_same_secret_name_in_another_ring(cast, secret, other):
    response = post(cast["secadmin"], f"{API}/secrets/", secret_body(name="mail-1", keyring="ring-other"))

    assert response.status_code == 201, response.content
    assert Secret.objects.filter(name="mail-1").count() == 2


# --- secrets: update ----------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["secadmin", "svc"])
def test_it_replaces_the_value_and_the_next_reveal_returns_the_new_one(cast, secret, who):
    new_value = random.token_hex(16)

    response = patch(cast[who], secret_url(secret), {"value": new_value})

    assert response.status_code == 200, response.content
    assert SECRET_FIELDS <= set(response.json())
    assert_nothing_secret_in(response, new_value, VALUE)
    stored = Secret.objects.get(pk=secret.pk)
    assert stored.value_version == secret.value_version + 1
    assert bytes(stored.envelope) != bytes(secret.envelope)
    assert stored.metadata == secret.metadata
    assert AuditEvent.objects.filter(action="secret.updated", actor=cast[who], target_id=str(secret.pk)).count() == 1
    revealed = reveal(cast["svc"], secret)
    assert revealed.status_code == 200
    assert revealed.json()["value"] == new_value


def test_it_replaces_the_metadata_alone_and_keeps_the_value(cast, secret):
    metadata = {**MAILBOX, "account_address": "billing@example.test"}

    response = patch(cast["secadmin"], secret_url(secret), {"metadata": metadata})

    assert response.status_code == 200, response.content
    assert response.json()["metadata"]["account_address"] == "billing@example.test"
    stored = Secret.objects.get(pk=secret.pk)
    assert (stored.value_version, bytes(stored.envelope)) == (secret.value_version, bytes(secret.envelope))
    assert stored.metadata["account_address"] == "billing@example.test"
    assert reveal(cast["svc"], secret).json()["value"] == VALUE


@pytest.mark.parametrize("who, status", [("requester", 403), ("admin2", 403), ("auditor", 403), ("outsider", 404)])
def test_it_refuses_updates_to_readers_even_under_a_grant(cast, granted, secret, who, status):
    before, events_before = snapshot(), last_seq()

    response = patch(cast[who], secret_url(secret), {"value": "overwritten-value"})

    assert response.status_code == status, response.content
    assert snapshot() == before
    assert events_since(events_before) == []
    assert reveal(cast["requester"], secret).json()["value"] == VALUE  # requester holds the grant


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "value"),
        ({"value": ""}, "value"),
        ({"value": "   "}, "value"),
        ({"value": None}, "value"),
        ({"metadata": []}, "metadata"),
        ({"metadata": "x"}, "metadata"),
        ({"metadata": {**MAILBOX, "password": "hunter2"}}, "metadata"),
        ({"metadata": {"provider": "gmail"}}, "metadata"),
        ({"name": "renamed"}, "name"),
        ({"kind": "generic"}, "kind"),
        ({"keyring": "ring-other"}, "keyring"),
        ({"key_version": 5}, "key_version"),
        ({"value_version": 1, "value": "v"}, "value_version"),
    ],
    ids=[
        "empty body",
        "empty value",
        "blank value",
        "null value",
        "metadata a list",
        "metadata a string",
        "metadata with a password",
        "connected account metadata incomplete",
        "name",
        "kind",
        "keyring",
        "key_version",
        "value_version",
    ],
)
def test_it_refuses_a_bad_update_naming_the_field_and_changes_nothing(cast, secret, body, field):
    before, events_before = snapshot(), last_seq()

    response = patch(cast["secadmin"], secret_url(secret), body)

    assert response.status_code == 400, response.content
    assert field in response.json()["errors"]
    assert_nothing_secret_in(response, VALUE)
    assert snapshot() == before
    assert events_since(events_before) == []


# --- reveal -------------------------------------------------------------------------------------


def assert_one_reveal_event(
    since: int, *, action: str, outcome: str, actor: Any, target: Any, grant_id: int | None, value: str = VALUE
) -> AuditEvent:
    [event] = events_since(since)
    assert (event.action, event.outcome, event.actor_id, event.target_type, event.target_id, event.grant_id) == (
        action,
        outcome,
        getattr(actor, "pk", None),
        "secret",
        str(target),
        grant_id,
    )
    assert value not in str(event.data)
    assert event.data.get("reason") is not None
    return event


def test_it_reveals_to_the_rings_standing_service_account(cast, secret):
    since = last_seq()

    response = reveal(cast["svc"], secret)

    assert response.status_code == 200, response.content
    assert response.json() == {"value": VALUE, "key_version": 1, "grant": None}
    assert "no-store" in response["Cache-Control"]
    event = assert_one_reveal_event(
        since, action="secret.revealed", outcome="success", actor=cast["svc"], target=secret.pk, grant_id=None
    )
    assert event.data["reason"] == REASON["reason"]


def test_a_reveal_with_a_token_asks_the_database_only_what_it_must(cast, secret):
    # The hot path (docs/PERFORMANCE.md): every question still goes to the database on every call,
    # and nothing else does. The first reveal warms the KEK cache and records the token's use.
    client = bearer(api_token_create(user=cast["svc"])[0])
    assert client.post(secret_url(secret, "reveal"), REASON, format="json").status_code == 200

    with CaptureQueriesContext(connection) as queries:
        response = client.post(secret_url(secret, "reveal"), REASON, format="json")

    assert response.json()["value"] == VALUE
    statements = [query["sql"] for query in queries.captured_queries]
    # The clock, the token with its user, the second-factor rule, the secret with its ring and group,
    # the standing membership; then the audit write in its transaction (a savepoint here): the
    # chain's lock, its head, the clock, the event.
    assert len(statements) == 11, statements
    verbs = [statement.split()[0] for statement in statements]
    assert verbs.count("INSERT") == 1 and "UPDATE" not in verbs and "DELETE" not in verbs, statements
    assert sum("clock_timestamp()" in statement for statement in statements) == 2, statements


def test_it_reveals_to_the_holder_of_an_active_grant(cast, granted, secret):
    grant = granted.grant
    since = last_seq()

    response = reveal(cast["requester"], secret)

    assert response.status_code == 200, response.content
    assert response.json() == {"value": VALUE, "key_version": 1, "grant": grant.pk}
    assert "no-store" in response["Cache-Control"]
    assert_one_reveal_event(
        since, action="secret.revealed", outcome="success", actor=cast["requester"], target=secret.pk, grant_id=grant.pk
    )


def test_it_reveals_the_key_version_the_value_is_sealed_under(cast, secret):
    assert post(cast["secadmin"], f"{API}/keyrings/ring-test/rotate/").status_code == 200
    services.keyring_rewrap(secret.keyring)

    response = reveal(cast["svc"], secret)

    assert response.json() == {"value": VALUE, "key_version": 2, "grant": None}


@pytest.mark.parametrize("who", ["admin2", "auditor", "secadmin", "legal1a", "legal2", "outsider"])
def test_it_refuses_to_reveal_without_standing_membership_or_a_grant(cast, granted, secret, who):
    since = last_seq()

    response = reveal(cast[who], secret)

    assert response.status_code == 403, response.content
    assert response.json()["code"] == "no_access"
    assert_nothing_secret_in(response, VALUE)
    assert "value" not in response.json()
    assert_one_reveal_event(
        since, action="secret.reveal_denied", outcome="denied", actor=cast[who], target=secret.pk, grant_id=None
    )


def test_it_refuses_to_reveal_once_the_grant_was_revoked(cast, granted, secret):
    assert reveal(cast["requester"], secret).status_code == 200
    revoked = post(cast["requester"], f"{API}/grants/{granted.grant.pk}/revoke/", {"reason": "done"})
    assert revoked.status_code == 200, revoked.content
    since = last_seq()

    response = reveal(cast["requester"], secret)

    assert response.status_code == 403, response.content
    assert response.json()["code"] == "no_access"
    assert_nothing_secret_in(response, VALUE)
    assert_one_reveal_event(
        since, action="secret.reveal_denied", outcome="denied", actor=cast["requester"], target=secret.pk, grant_id=None
    )


def test_it_refuses_to_reveal_another_groups_secret_under_a_grant(cast, granted, secret, other):
    since = last_seq()

    response = reveal(cast["requester"], other["secret"])

    assert response.status_code == 403
    assert_nothing_secret_in(response, "other-s3cret-value")
    assert_one_reveal_event(
        since,
        action="secret.reveal_denied",
        outcome="denied",
        actor=cast["requester"],
        target=other["secret"].pk,
        grant_id=None,
        value="other-s3cret-value",
    )


def test_it_reveals_to_a_security_admin_only_under_a_grant(cast, entitlement, secret):
    cast["secadmin"].groups.add(Group.objects.get(name=roles.DATACENTER_ADMINS))
    secadmin = fresh(cast["secadmin"])
    assert reveal(secadmin, secret).status_code == 403

    grant = approve_through(submit(secadmin, entitlement), cast["legal1a"], cast["legal2"]).grant
    since = last_seq()
    response = reveal(fresh(secadmin), secret)

    assert response.status_code == 200, response.content
    assert response.json() == {"value": VALUE, "key_version": 1, "grant": grant.pk}
    assert_one_reveal_event(
        since, action="secret.revealed", outcome="success", actor=secadmin, target=secret.pk, grant_id=grant.pk
    )


@pytest.mark.parametrize("who", ["svc", "outsider"])
def test_it_answers_404_for_an_unknown_secret_and_audits_the_attempt(cast, secret, who):
    unknown = Secret.objects.aggregate(last=Max("pk"))["last"] + 1000
    since = last_seq()

    response = reveal(cast[who], unknown)

    assert response.status_code == 404, response.content
    assert response.json()["code"] == "not_found"
    assert_one_reveal_event(
        since, action="secret.reveal_denied", outcome="denied", actor=cast[who], target=unknown, grant_id=None
    )


MALFORMED_IDS = ["abc", "1x", "-1", "1.0", "%00", "9" * 19, "9" * 40]


@pytest.mark.parametrize("pk", MALFORMED_IDS)
def test_it_answers_404_for_a_malformed_or_out_of_range_secret_id(cast, secret, pk):
    before = snapshot()

    answers = [get(cast["svc"], secret_url(pk)), patch(cast["secadmin"], secret_url(pk), {"value": "x"})]

    assert [response.status_code for response in answers] == [404, 404]
    assert snapshot() == before


@pytest.mark.parametrize("pk", MALFORMED_IDS)
def test_it_audits_a_reveal_of_a_malformed_secret_id_as_unknown(cast, secret, pk):
    # "Every call, allowed or not, is audited" (API.md): a probe with an id that is not a number
    # is a reveal attempt on an unknown secret, answered and recorded like one.
    since = last_seq()

    response = reveal(cast["svc"], pk)

    assert response.status_code == 404, response.content
    assert_nothing_secret_in(response, VALUE)
    [event] = events_since(since)
    assert (event.action, event.outcome, event.actor, event.target_type, event.grant_id) == (
        "secret.reveal_denied",
        "denied",
        cast["svc"],
        "secret",
        None,
    )


@pytest.mark.parametrize("name", ["%00", "a%2Fb", "ring-test%00", "%C3%A9", "x" * 500])
def test_it_answers_an_unknown_or_malformed_keyring_name_with_404(cast, keyring, name):
    before = snapshot()

    answers = [
        get(cast["secadmin"], f"{API}/keyrings/{name}/"),
        post(cast["secadmin"], f"{API}/keyrings/{name}/rotate/"),
    ]

    assert [response.status_code for response in answers] == [404, 404]
    assert snapshot() == before


def test_it_refuses_to_reveal_from_expires_at_on_before_any_task_ran(cast, granted, secret):
    credential = credential_of(cast, granted.grant)
    now = clock.now()
    Grant.objects.filter(pk=granted.grant.pk).update(
        starts_at=now - timedelta(hours=1), expires_at=now - timedelta(seconds=1)
    )
    since = last_seq()

    response = reveal(cast["requester"], secret)

    assert response.status_code == 403, response.content
    assert_one_reveal_event(
        since, action="secret.reveal_denied", outcome="denied", actor=cast["requester"], target=secret.pk, grant_id=None
    )
    assert credential.post(secret_url(secret, "reveal"), REASON, format="json").status_code == 401
    assert not AuditEvent.objects.filter(action="secret.revealed").exists()


@pytest.mark.parametrize(
    "body",
    [{}, {"reason": ""}, {"reason": "   \n"}, {"reason": None}, {"reason": 42}, {"reason": "x" * 501}, ["reason"]],
    ids=["missing", "empty", "blank", "null", "not a string", "too long", "body a list"],
)
def test_it_requires_a_reason_naming_it_and_audits_the_refusal(cast, secret, body):
    since = last_seq()

    response = reveal(cast["svc"], secret, body)

    assert response.status_code == 400, response.content
    assert "reason" in response.json()["errors"]
    assert "reason" in response.json()["detail"]
    assert_nothing_secret_in(response, VALUE)
    [event] = events_since(since)
    assert (event.action, event.outcome, event.actor, event.target_id) == (
        "secret.reveal_denied",
        "denied",
        cast["svc"],
        str(secret.pk),
    )


def test_it_refuses_and_audits_a_value_that_cannot_be_opened(cast, secret):
    tampered = bytearray(bytes(secret.envelope))
    tampered[-1] ^= 0x01
    Secret.objects.filter(pk=secret.pk).update(envelope=bytes(tampered))
    since = last_seq()

    response = reveal(cast["svc"], secret)

    assert response.status_code == 409, response.content
    assert response.json()["code"] == "secret_unreadable"
    assert_one_reveal_event(
        since, action="secret.reveal_failed", outcome="failed", actor=cast["svc"], target=secret.pk, grant_id=None
    )


# --- the grant credential -----------------------------------------------------------------------


def credential_of(cast: dict[str, Any], grant: Grant) -> APIClient:
    response = post(cast["requester"], f"{API}/grants/{grant.pk}/credential/")
    assert response.status_code == 201, response.content
    return bearer(response.json()["credential"])


def test_it_reveals_the_grants_secret_with_the_grant_credential(cast, granted, secret):
    credential = credential_of(cast, granted.grant)
    since = last_seq()

    response = credential.post(secret_url(secret, "reveal"), REASON, format="json")

    assert response.status_code == 200, response.content
    assert response.json() == {"value": VALUE, "key_version": 1, "grant": granted.grant.pk}
    assert "no-store" in response["Cache-Control"]
    assert_one_reveal_event(
        since,
        action="secret.revealed",
        outcome="success",
        actor=cast["requester"],
        target=secret.pk,
        grant_id=granted.grant.pk,
    )


def test_it_lets_the_grant_credential_do_nothing_but_reveal(cast, granted, secret):
    # The grantee is also a security admin here, so each refusal below is the credential's scope
    # and not the grantee's lack of rights: with their personal login all of these succeed.
    cast["requester"].groups.add(Group.objects.get(name=roles.SECURITY_ADMINS))
    credential = credential_of(cast, granted.grant)
    before, events_before = snapshot(), last_seq()

    answers = {
        "list secrets": credential.get(f"{API}/secrets/"),
        "show secret": credential.get(secret_url(secret)),
        "list keyrings": credential.get(f"{API}/keyrings/"),
        "show keyring": credential.get(f"{API}/keyrings/ring-test/"),
        "rotate": credential.post(f"{API}/keyrings/ring-test/rotate/", {}, format="json"),
        "create keyring": credential.post(
            f"{API}/keyrings/", {"name": "ring-new", "security_group": "dkm-test"}, format="json"
        ),
        "create secret": credential.post(f"{API}/secrets/", secret_body(value="v2"), format="json"),
        "update secret": credential.patch(secret_url(secret), {"value": "overwritten"}, format="json"),
    }

    assert {name: response.status_code for name, response in answers.items()} == dict.fromkeys(answers, 403)
    assert snapshot() == before
    assert events_since(events_before) == []
    personal = fresh(cast["requester"])
    assert get(personal, f"{API}/secrets/").status_code == 200
    assert post(personal, f"{API}/keyrings/ring-test/rotate/").status_code == 200


def test_it_refuses_a_credential_of_a_grant_on_another_group(cast, granted, secret, other):
    other_grant = approve_through(
        submit(cast["requester"], other["entitlement"]), cast["legal1a"], cast["legal2"]
    ).grant
    credential = credential_of(cast, other_grant)
    since = last_seq()

    response = credential.post(secret_url(secret, "reveal"), REASON, format="json")

    # The grantee holds a grant for dkm-test too, but this credential opens only dkm-other.
    assert response.status_code == 403, response.content
    assert response.json()["code"] == "no_access"
    assert_nothing_secret_in(response, VALUE)
    assert_one_reveal_event(
        since,
        action="secret.reveal_denied",
        outcome="denied",
        actor=cast["requester"],
        target=secret.pk,
        grant_id=other_grant.pk,
    )
    opened = credential.post(secret_url(other["secret"], "reveal"), REASON, format="json")
    assert opened.status_code == 200
    assert opened.json()["value"] == "other-s3cret-value"


def test_it_refuses_the_grant_credential_after_revocation(cast, granted, secret):
    credential = credential_of(cast, granted.grant)
    assert credential.post(secret_url(secret, "reveal"), REASON, format="json").status_code == 200
    assert post(cast["requester"], f"{API}/grants/{granted.grant.pk}/revoke/", {"reason": "done"}).status_code == 200

    response = credential.post(secret_url(secret, "reveal"), REASON, format="json")

    assert response.status_code == 401, response.content
    assert_nothing_secret_in(response, VALUE)
    assert AuditEvent.objects.filter(action="secret.revealed").count() == 1


# --- no answer but reveal carries a value or key material ---------------------------------------


@pytest.mark.parametrize("who", ["secadmin", "svc", "auditor", "requester"])
def test_it_never_answers_with_a_value_or_key_material_outside_reveal(cast, granted, secret, who):
    value = random.token_hex(16)
    patched = patch(cast["secadmin"], secret_url(secret), {"value": value})
    created = post(cast["secadmin"], f"{API}/secrets/", secret_body(value=value))
    answers = [
        patched,
        created,
        get(cast[who], f"{API}/keyrings/"),
        get(cast[who], f"{API}/keyrings/ring-test/"),
        get(cast[who], f"{API}/secrets/"),
        get(cast[who], secret_url(secret)),
        get(cast[who], secret_url(created.json()["id"])),
        post(cast[who], f"{API}/keyrings/ring-test/rotate/"),
        patch(cast[who], secret_url(secret), {"metadata": MAILBOX}),
        post(cast[who], f"{API}/secrets/", secret_body(name="mail-9", value=value)),
        get(cast[who], f"{API}/schema/", format="json"),
    ]

    assert patched.status_code == 200 and created.status_code == 201
    for response in answers:
        assert response.status_code < 500
        assert_nothing_secret_in(response, value, VALUE)
    assert reveal(cast["svc"], secret).json()["value"] == value  # the value was there to be leaked


# --- meta ---------------------------------------------------------------------------------------


def test_it_describes_the_keys_api_in_the_openapi_schema(cast):
    response = get(cast["requester"], f"{API}/schema/", format="json")

    assert response.status_code == 200
    paths = response.json()["paths"]
    for path in [
        "/api/v1/keyrings/",
        "/api/v1/keyrings/{name}/",
        "/api/v1/keyrings/{name}/rotate/",
        "/api/v1/secrets/",
        "/api/v1/secrets/{id}/",
        "/api/v1/secrets/{id}/reveal/",
    ]:
        assert path in paths, path
    assert "post" in paths["/api/v1/secrets/{id}/reveal/"]
    assert "post" in paths["/api/v1/keyrings/{name}/rotate/"]
    assert "patch" in paths["/api/v1/secrets/{id}/"]


# --- every endpoint: the outsider and the anonymous caller --------------------------------------

ENDPOINTS = [
    ("get", "/api/v1/keyrings/"),
    ("post", "/api/v1/keyrings/"),
    ("get", "/api/v1/keyrings/ring-test/"),
    ("post", "/api/v1/keyrings/ring-test/rotate/"),
    ("get", "/api/v1/secrets/"),
    ("post", "/api/v1/secrets/"),
    ("get", "/api/v1/secrets/{secret}/"),
    ("patch", "/api/v1/secrets/{secret}/"),
    ("post", "/api/v1/secrets/{secret}/reveal/"),
]


def call(client: APIClient, method: str, path: str, secret: Secret) -> Any:
    url = path.format(secret=secret.pk)
    if method == "get":
        return client.get(url)
    if method == "patch":
        return client.patch(url, {"value": "overwritten-value"}, format="json")
    body: dict[str, Any] = {}
    if url.endswith("/keyrings/"):
        body = {"name": "ring-new", "security_group": "dkm-test"}
    elif url.endswith("/secrets/"):
        body = secret_body(value="planted-value")
    elif url.endswith("/reveal/"):
        body = REASON
    return client.post(url, body, format="json")


@pytest.mark.parametrize("method, path", ENDPOINTS)
def test_it_answers_anonymous_callers_with_401(granted, secret, method, path):
    before = snapshot()

    response = call(APIClient(), method, path, secret)

    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert_nothing_secret_in(response, VALUE)
    assert snapshot() == before


@pytest.mark.parametrize("method, path", ENDPOINTS)
def test_it_shows_the_outsider_nothing_and_lets_them_do_nothing(cast, granted, secret, method, path):
    before = snapshot()

    response = call(client_for(cast["outsider"]), method, path, secret)

    assert snapshot() == before
    assert_nothing_secret_in(response, VALUE)
    if method == "get" and "{" not in path and not path.endswith("ring-test/"):
        assert results(response) == []
    elif method == "post" and path.endswith("/secrets/"):
        # Creating names a key ring the outsider cannot see: it is refused as unknown.
        assert response.status_code == 400, response.content
        assert "keyring" in response.json()["errors"]
    else:
        assert response.status_code in (403, 404), response.content


@pytest.mark.parametrize("value", [123, True, ["a"], {"a": 1}])
def test_it_refuses_a_value_that_is_not_a_string(cast, keyring, value):
    response = post(cast["secadmin"], f"{API}/secrets/", secret_body(value=value))

    assert response.status_code == 400, response.content
    assert "value" in response.json()["errors"]
    assert not Secret.objects.exists()
