"""Invariant 11 for the credentials this part of the product handles: personal API tokens and
grant credentials never appear in clear in the database, the audit trail, logs or Redis."""

from __future__ import annotations

import logging

import pytest
import redis
from django.conf import settings
from django.db import connection

from tests.conftest import approve_through


def database_text() -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
        )
        tables = [row[0] for row in cursor.fetchall()]
        dump = []
        for table in tables:
            cursor.execute(f'SELECT row_to_json(t)::text FROM "{table}" t')  # noqa: S608 — names from the catalog
            dump.extend(row[0] for row in cursor.fetchall())
    return "\n".join(dump)


def redis_text() -> str:
    client = redis.Redis.from_url(settings.REDIS_URL)
    chunks = []
    for key in client.scan_iter():
        chunks.append(repr(key))
        kind = client.type(key)
        if kind == b"string":
            chunks.append(repr(client.get(key)))
        elif kind == b"list":
            chunks.extend(repr(v) for v in client.lrange(key, 0, -1))
        elif kind == b"hash":
            chunks.append(repr(client.hgetall(key)))
        elif kind == b"zset":
            chunks.extend(repr(v) for v in client.zrange(key, 0, -1))
        elif kind == b"set":
            chunks.extend(repr(v) for v in client.smembers(key))
    return "\n".join(chunks)


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

    stored, logged, cached = database_text(), caplog.text, redis_text()
    assert "auth.token_issued" in stored and "credential.minted" in stored  # the dump really covers the trail
    for clear in (token, credential, token[8:40], credential[9:40]):
        assert clear not in stored
        assert clear not in logged
        assert clear not in cached
