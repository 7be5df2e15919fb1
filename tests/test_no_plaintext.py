"""Invariant 11 for the credentials this part of the product handles: personal API tokens and
grant credentials never appear in clear in the database, the audit trail, logs or Redis."""

from __future__ import annotations

import logging

import pytest

from tests.conftest import approve_through
from tests.stores import database_dump, redis_dump


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_tokens_and_credentials_are_never_stored_or_logged_in_clear(cast, entitlement, api, caplog):
    caplog.set_level(logging.DEBUG)
    token = api.post("/api/v1/auth/token/", {"username": "requester", "password": "pw-requester"}).json()["token"]
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    created = api.post(
        "/api/v1/requests/",
        {
            "entitlement": "dkm-test",
            "purpose": "debugging",
            "justification": "j",
            "ticket": "T-1",
            "duration_seconds": 5,
        },
    )
    request_id = created.json()["id"]
    grant = approve_through(entitlement.requests.get(pk=request_id), cast["legal1a"], cast["legal2"]).grant
    credential = api.post(f"/api/v1/grants/{grant.pk}/credential/").json()["credential"]
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {credential}")
    assert api.get("/api/v1/grants/").status_code == 403  # used, and refused for being out of scope
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert api.post(f"/api/v1/grants/{grant.pk}/revoke/", {"reason": "done"}).status_code == 200

    stored, logged, cached = database_dump(), caplog.text, redis_dump()
    assert "auth.token_issued" in stored and "credential.minted" in stored  # the dump really covers the trail
    for clear in (token, credential, token[8:40], credential[9:40]):
        assert clear not in stored
        assert clear not in logged
        assert clear not in cached
