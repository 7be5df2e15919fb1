"""Invariant 11 for secret values: a value sealed by the keys app appears nowhere in clear — not in
any column of any table (the envelope included: it is ciphertext), not in the audit trail, not in
any log record, not in Redis (cache or Celery messages) — whatever the flow, failures included."""

from __future__ import annotations

import base64
import logging
import secrets as random
from typing import Any

import pytest
from django.db import connection
from rest_framework.test import APIClient

from jitaccess.audit.models import AuditEvent
from keys import services
from keys.models import KeyRing, Secret
from tests.conftest import as_user
from tests.stores import database_dump, redis_dump

API = "/api/v1"
REASON = {"reason": "INC-2002 canary run"}
MAILBOX = {"provider": "gmail", "account_address": "ops@example.test", "credential_type": "password"}


def capture_every_logger(caplog: Any) -> None:
    """DEBUG for the root and every known logger; loggers that do not propagate get the handler."""
    caplog.set_level(logging.DEBUG)
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger):
            caplog.set_level(logging.DEBUG, logger=name)
            if not logger.propagate and caplog.handler not in logger.handlers:
                logger.addHandler(caplog.handler)


def release_every_logger(caplog: Any) -> None:
    for logger in list(logging.Logger.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger) and caplog.handler in logger.handlers:
            logger.removeHandler(caplog.handler)


def log_dump(caplog: Any) -> str:
    chunks = [caplog.text]
    for record in caplog.records:
        chunks.extend([record.getMessage(), repr(record.args), repr(record.msg), record.exc_text or ""])
        chunks.append(repr({k: v for k, v in vars(record).items() if k not in ("args", "msg")}))
    return "\n".join(chunks)


def forms_of(marker: str) -> list[str]:
    """The marker as text, as hex (how row_to_json shows bytea) and as base64."""
    raw = marker.encode()
    return [marker, raw.hex(), base64.b64encode(raw).decode()]


def client_for(user: Any) -> APIClient:
    return as_user(APIClient(), user)


@pytest.fixture
def every_log(caplog: Any) -> Any:
    # Every SQL statement is logged with its parameters too: a value written in clear by any
    # query, even one rolled back, shows up in the logs.
    capture_every_logger(caplog)
    connection.force_debug_cursor = True
    yield caplog
    connection.force_debug_cursor = False
    release_every_logger(caplog)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_secret_values_are_never_stored_logged_or_cached_in_clear(cast, granted, keyring, every_log):
    markers = {name: "canary-" + random.token_hex(16) for name in ["a", "b", "b2", "c", "refused", "refused2"]}
    svc, secadmin, requester = client_for(cast["svc"]), client_for(cast["secadmin"]), client_for(cast["requester"])
    name_marker = "name-" + random.token_hex(8)  # stored in clear on purpose: proves the dump sees the rows

    ids = {}
    for key, by, name in [("a", svc, name_marker), ("b", secadmin, "mail-b"), ("c", svc, "mail-c")]:
        created = by.post(
            f"{API}/secrets/",
            {
                "name": name,
                "keyring": "ring-test",
                "kind": "connected_account",
                "metadata": MAILBOX,
                "value": markers[key],
            },
            format="json",
        )
        assert created.status_code == 201, created.content
        ids[key] = created.json()["id"]
    refused = svc.post(
        f"{API}/secrets/",
        {"name": "bad", "keyring": "ring-test", "kind": "generic", "metadata": ["x"], "value": markers["refused"]},
        format="json",
    )
    assert refused.status_code == 400

    def reveal(client: APIClient, key: str, body: Any = REASON) -> Any:
        return client.post(f"{API}/secrets/{ids[key]}/reveal/", body, format="json")

    assert reveal(svc, "a").json()["value"] == markers["a"]
    assert reveal(requester, "a").json()["grant"] == granted.grant.pk
    credential = requester.post(f"{API}/grants/{granted.grant.pk}/credential/").json()["credential"]
    by_credential = APIClient()
    by_credential.credentials(HTTP_AUTHORIZATION=f"Bearer {credential}")
    assert reveal(by_credential, "a").json()["value"] == markers["a"]
    assert reveal(client_for(cast["admin2"]), "a").status_code == 403
    assert reveal(client_for(cast["auditor"]), "b").status_code == 403
    assert reveal(svc, "a", {}).status_code == 400
    assert svc.post(f"{API}/secrets/{ids['c'] + 1000}/reveal/", REASON, format="json").status_code == 404

    assert secadmin.patch(f"{API}/secrets/{ids['b']}/", {"value": markers["b2"]}, format="json").status_code == 200
    bad_patch = secadmin.patch(
        f"{API}/secrets/{ids['b']}/", {"value": markers["refused2"], "metadata": {"password": "x"}}, format="json"
    )
    assert bad_patch.status_code == 400
    assert reveal(svc, "b").json()["value"] == markers["b2"]

    assert secadmin.post(f"{API}/keyrings/ring-test/rotate/").json()["primary_version"] == 2
    rewrapped = services.keyring_rewrap(KeyRing.objects.get(pk=keyring.pk))
    assert (rewrapped.rewrapped, rewrapped.failed) == (3, 0)
    assert reveal(svc, "a").json() == {"value": markers["a"], "key_version": 2, "grant": None}

    envelope = bytearray(bytes(Secret.objects.get(pk=ids["c"]).envelope))
    envelope[len(envelope) // 2] ^= 0x40
    Secret.objects.filter(pk=ids["c"]).update(envelope=bytes(envelope))
    unreadable = reveal(svc, "c")
    assert unreadable.status_code == 409
    assert unreadable.json()["code"] == "secret_unreadable"
    assert AuditEvent.objects.filter(action="secret.reveal_failed", target_id=str(ids["c"])).count() == 1

    stored, logged, cached = database_dump(), log_dump(every_log), redis_dump()

    # The dumps really cover what they claim to.
    assert name_marker in stored
    assert bytes(Secret.objects.get(pk=ids["a"]).envelope).decode("latin-1") in stored
    assert all(f'"{action}"' in stored for action in ["secret.revealed", "secret.reveal_denied", "key.rewrapped"])
    assert "django.db.backends" in logged and "keys_secret" in logged  # SQL with its parameters was captured
    assert "rewrap_keyring" in cached  # the rewrap task the rotation enqueued, decoded from its message
    for marker in markers.values():
        for form in forms_of(marker):
            assert form not in stored, f"{marker} found in the database"
            assert form not in logged, f"{marker} found in the logs"
            assert form not in cached, f"{marker} found in Redis"
