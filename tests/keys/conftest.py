from __future__ import annotations

from typing import Any

import pytest

from approvals.models import SecurityGroup
from keys import services
from keys.kek import kek_cache_clear
from keys.models import KeyRing, Secret
from keys.providers import reset as providers_reset


@pytest.fixture(autouse=True)
def _fresh_key_caches() -> Any:
    # Each test starts from the database alone: no KEK or provider survives from the last one.
    kek_cache_clear()
    providers_reset()
    yield
    kek_cache_clear()
    providers_reset()


@pytest.fixture
def keyring(entitlement: Any, security_group: SecurityGroup) -> KeyRing:
    return services.keyring_create(name="ring-test", security_group=security_group, acting_user=None)


def make_secret(keyring: KeyRing, by: Any, name: str = "mail-1", value: str = "s3cret-value", **extra: Any) -> Secret:
    fields = {
        "kind": "connected_account",
        "metadata": {"provider": "gmail", "account_address": "ops@example.test", "credential_type": "password"},
    }
    fields.update(extra)
    return services.secret_create(keyring=keyring, name=name, value=value, acting_user=by, **fields)


@pytest.fixture
def secret(cast: dict[str, Any], keyring: KeyRing) -> Secret:
    return make_secret(keyring, cast["secadmin"])
