"""One canonical JSON encoding for everything that is hashed and later re-checked."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any


def canonical_sha256(body: Any) -> str:
    encoded = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(encoded.encode()).hexdigest()


def canonical_time(value: datetime) -> str:
    # Integer microseconds in UTC: exactly what PostgreSQL and SQLite store, so a row read
    # back hashes the same as the row written.
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
