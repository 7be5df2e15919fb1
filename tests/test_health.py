"""/readyz checks the database, the broker and the root-key provider, and says which failed."""

from __future__ import annotations

import base64
import os
from datetime import timedelta

import pytest
from django.utils import timezone

from jitaccess import health
from keys import services
from keys.kek import kek_cache_clear
from keys.models import KeyRing, KeyState, KeyVersion
from keys.providers import reset as providers_reset


@pytest.fixture(autouse=True)
def _fresh(settings):
    kek_cache_clear()
    providers_reset()
    health.forget_root_keys_answer()
    yield
    kek_cache_clear()
    providers_reset()
    health.forget_root_keys_answer()


def readyz(client):
    response = client.get("/readyz")
    return response.status_code, response.json()


@pytest.fixture
def local_ring(security_group):
    return services.keyring_create(name="ring-ready", security_group=security_group, acting_user=None)


def test_ready_with_a_local_key_ring_that_opens(client, local_ring):
    assert readyz(client) == (200, {"status": "ok", "checks": {"database": True, "broker": True, "root_keys": True}})


def test_a_wrong_root_key_is_not_ready_and_says_only_which_check_failed(client, local_ring, settings, caplog):
    right, wrong = settings.JIT_ROOT_KEY, os.urandom(32)
    settings.JIT_ROOT_KEY = wrong
    providers_reset()
    status, body = readyz(client)
    assert status == 503
    assert body == {"status": "unavailable", "checks": {"database": True, "broker": True, "root_keys": False}}
    assert "WrongKey" in caplog.text  # the operator's log says why; the probe's caller does not
    for secret in (right, wrong):
        assert base64.b64encode(secret).decode() not in caplog.text


def test_an_unreachable_hsm_is_not_ready(client, security_group, settings):
    settings.JIT_PKCS11_MODULE = ""
    ring = KeyRing.objects.create(
        name="ring-hsm",
        security_group=security_group,
        provider="pkcs11",
        provider_key="customer-key",
        rotated_at=timezone.now(),
        next_rotation_at=timezone.now() + timedelta(days=90),
    )
    KeyVersion.objects.create(
        keyring=ring,
        version=1,
        state=KeyState.PRIMARY,
        wrapped_key=os.urandom(60),
        check_value=os.urandom(8),
        root_ref=f"pkcs11:{settings.JIT_PKCS11_TOKEN_LABEL}/customer-key",
        created_at=timezone.now(),
    )
    status, body = readyz(client)
    assert status == 503
    assert body["checks"]["root_keys"] is False
    assert "customer-key" not in str(body)


def test_a_success_is_believed_for_a_few_seconds_then_asked_again(client, local_ring, settings):
    assert readyz(client)[0] == 200
    settings.JIT_ROOT_KEY = os.urandom(32)
    kek_cache_clear()
    providers_reset()
    assert readyz(client)[0] == 200  # within ROOT_KEYS_OK_SECONDS: the provider is not asked
    health.forget_root_keys_answer()
    assert readyz(client)[0] == 503


def test_no_key_rings_is_ready(client, db):
    assert readyz(client)[0] == 200
