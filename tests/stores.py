"""Everywhere a plaintext could come to rest, as text to search: every table (bytea cells too)
and every Redis key and value (the cache, Celery messages, base64 bodies unwrapped). The
invariant-11 tests (no secret, key or credential in clear) search these dumps."""

from __future__ import annotations

import base64
import binascii
import json
import re

import redis
from django.conf import settings
from django.db import connection

BASE64_RUN = re.compile(rb"[A-Za-z0-9+/=_-]{16,}")


def database_dump() -> str:
    """Every row of every table as JSON (bytea shows as hex there), plus every bytea cell as latin-1."""
    chunks = []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
        )
        for (table,) in cursor.fetchall():
            cursor.execute(f'SELECT row_to_json(t)::text FROM "{table}" t')  # noqa: S608 — names from the catalog
            chunks.extend(row[0] for row in cursor.fetchall())
        cursor.execute(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = 'public' AND data_type = 'bytea'"
        )
        for table, column in cursor.fetchall():
            cursor.execute(f'SELECT "{column}" FROM "{table}" WHERE "{column}" IS NOT NULL')  # noqa: S608
            chunks.extend(bytes(row[0]).decode("latin-1") for row in cursor.fetchall())
    return "\n".join(chunks)


def unwrapped(raw: bytes) -> list[bytes]:
    """The bytes themselves and anything base64 inside them: Celery message bodies are base64."""
    found = [raw]
    for run in BASE64_RUN.findall(raw):
        for decode in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                found.append(decode(run + b"=" * (-len(run) % 4)))
            except (binascii.Error, ValueError):
                continue
    return found


def redis_dump() -> str:
    client = redis.Redis.from_url(settings.REDIS_URL)
    raw: list[bytes] = []
    for key in client.scan_iter(count=1000):
        raw.append(key)
        kind = client.type(key)
        if kind == b"string":
            raw.append(client.get(key) or b"")
        elif kind == b"list":
            raw.extend(client.lrange(key, 0, -1))
        elif kind == b"hash":
            for field, item in client.hgetall(key).items():
                raw.extend([field, item])
        elif kind == b"zset":
            raw.extend(client.zrange(key, 0, -1))
        elif kind == b"set":
            raw.extend(client.smembers(key))
        elif kind == b"stream":
            raw.append(json.dumps(client.xrange(key), default=repr).encode())
    return "\n".join(chunk.decode("latin-1") for item in raw for chunk in unwrapped(item))
