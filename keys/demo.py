"""The demo key ring and its connected-account secrets (API.md, "Demo data"). Idempotent.

The values are made-up demo passwords for example.test mailboxes; they exist so the reveal flow
can be tried end to end, and they are sealed like any other secret.
"""

from __future__ import annotations

from typing import Any

from approvals.models import SecurityGroup
from keys.models import KeyRing, Secret, SecretKind
from keys.services import keyring_create, secret_create

DEMO_KEYRING = "exchange-connected-accounts"
DEMO_SECRETS = [
    # name, mail provider, address, credential type, demo value
    ("gmail-support", "gmail", "support@example.test", "oauth_refresh_token", "demo-refresh-token-gmail-0001"),
    ("yahoo-billing", "yahoo", "billing@example.test", "password", "demo-password-yahoo-0002"),
    ("outlook-ops", "outlook", "ops@example.test", "oauth_refresh_token", "demo-refresh-token-outlook-0003"),
]


def seed_keys_demo(users: dict[str, Any]) -> KeyRing:
    keyring = KeyRing.objects.filter(name=DEMO_KEYRING).first() or keyring_create(
        name=DEMO_KEYRING,
        security_group=SecurityGroup.objects.get(name="dkm-exchange"),
        description="Credentials of the connected Gmail, Yahoo and Outlook.com demo accounts.",
        acting_user=None,
    )
    for name, provider, address, credential_type, value in DEMO_SECRETS:
        if Secret.objects.filter(keyring=keyring, name=name).exists():
            continue
        secret_create(
            keyring=keyring,
            name=name,
            kind=SecretKind.CONNECTED_ACCOUNT,
            metadata={"provider": provider, "account_address": address, "credential_type": credential_type},
            value=value,
            acting_user=users["svc-exchange"],
        )
    return keyring
