"""Admin pages for key rings and secrets: metadata and versions only, changes through the services."""

from __future__ import annotations

import base64
from typing import Any

from django.test import Client

from jitaccess.audit.models import AuditEvent
from keys.models import KeyRing, KeyState, KeyVersion, Secret


def admin_client(user: Any) -> Client:
    user.is_staff = True
    user.save()
    client = Client()
    client.force_login(user)
    return client


def material(keyring: KeyRing, secret: Secret) -> list[bytes]:
    """Every encoding of stored key material or ciphertext that a page could leak."""
    blobs = [bytes(v.wrapped_key) for v in KeyVersion.objects.filter(keyring=keyring)]
    blobs += [bytes(v.check_value) for v in KeyVersion.objects.filter(keyring=keyring)]
    blobs.append(bytes(Secret.objects.get(pk=secret.pk).envelope))
    encodings = []
    for blob in blobs:
        encodings += [blob.hex().encode(), base64.b64encode(blob)[:24], repr(blob)[2:30].encode()]
    return encodings


def test_pages_show_metadata_and_versions_but_never_key_material_or_values(cast, keyring, secret):
    client = admin_client(cast["secadmin"])
    pages = [
        client.get("/admin/keys/keyring/"),
        client.get(f"/admin/keys/keyring/{keyring.pk}/change/"),
        client.get("/admin/keys/secret/"),
        client.get(f"/admin/keys/secret/{secret.pk}/change/"),
    ]

    assert [page.status_code for page in pages] == [200, 200, 200, 200]
    assert b"ops@example.test" in pages[3].content and b"primary" in pages[1].content
    for page in pages:
        assert b"s3cret-value" not in page.content
        for leak in material(keyring, secret):
            assert leak not in page.content


def test_a_security_admin_creates_a_key_ring_through_the_service(cast, security_group):
    response = admin_client(cast["secadmin"]).post(
        "/admin/keys/keyring/add/",
        {
            "name": "ring-admin",
            "description": "made in the admin",
            "security_group": security_group.pk,
            "provider": "local",
            "provider_key": "",
            "rotation_period_seconds": 86400,
            "versions-TOTAL_FORMS": "0",
            "versions-INITIAL_FORMS": "0",
        },
    )

    assert response.status_code == 302, response.content
    keyring = KeyRing.objects.get(name="ring-admin")
    assert list(keyring.versions.values_list("version", "state")) == [(1, KeyState.PRIMARY)]
    assert AuditEvent.objects.filter(action="keyring.created", actor_id=cast["secadmin"].pk).count() == 1


def test_an_hsm_ring_without_a_label_is_refused_beside_the_field(cast, security_group):
    response = admin_client(cast["secadmin"]).post(
        "/admin/keys/keyring/add/",
        {
            "name": "ring-hsm",
            "security_group": security_group.pk,
            "provider": "pkcs11",
            "provider_key": "",
            "rotation_period_seconds": 86400,
            "versions-TOTAL_FORMS": "0",
            "versions-INITIAL_FORMS": "0",
        },
    )

    assert response.status_code == 200
    assert "provider_key" in response.context["adminform"].form.errors
    assert not KeyRing.objects.filter(name="ring-hsm").exists()


def test_the_rotate_action_rotates_and_audits_for_a_security_admin_only(cast, keyring):
    action = {"action": "rotate", "_selected_action": [keyring.pk]}

    admin_client(cast["auditor"]).post("/admin/keys/keyring/", action)
    assert KeyVersion.objects.filter(keyring=keyring).count() == 1  # auditors look, never change

    admin_client(cast["secadmin"]).post("/admin/keys/keyring/", action)
    assert dict(KeyVersion.objects.filter(keyring=keyring).values_list("version", "state")) == {
        1: KeyState.ACTIVE,
        2: KeyState.PRIMARY,
    }
    assert AuditEvent.objects.get(action="key.rotated").actor_id == cast["secadmin"].pk


def test_nobody_edits_or_deletes_secrets_or_deletes_key_rings_in_the_admin(cast, keyring, secret):
    client = admin_client(cast["secadmin"])

    client.post(f"/admin/keys/secret/{secret.pk}/change/", {"name": "renamed", "kind": "generic"})
    client.post(f"/admin/keys/secret/{secret.pk}/delete/", {"post": "yes"})
    client.post(f"/admin/keys/keyring/{keyring.pk}/delete/", {"post": "yes"})

    assert Secret.objects.get(pk=secret.pk).name == secret.name
    assert KeyRing.objects.filter(pk=keyring.pk).exists()
    assert client.get("/admin/keys/secret/add/").status_code == 403


def test_editing_a_key_ring_goes_through_the_audited_service(cast, keyring):
    response = admin_client(cast["secadmin"]).post(
        f"/admin/keys/keyring/{keyring.pk}/change/",
        {
            "description": "new words",
            "rotation_period_seconds": 7200,
            "versions-TOTAL_FORMS": "1",
            "versions-INITIAL_FORMS": "1",
            "versions-0-id": KeyVersion.objects.get(keyring=keyring).pk,
            "versions-0-keyring": keyring.pk,
        },
    )

    assert response.status_code == 302, response.content
    keyring.refresh_from_db()
    assert (keyring.description, keyring.rotation_period_seconds) == ("new words", 7200)
    event = AuditEvent.objects.get(action="keyring.policy_changed")
    assert (event.actor_id, event.data) == (cast["secadmin"].pk, {"rotation_period_seconds": [7776000, 7200]})
