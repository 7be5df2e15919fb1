"""One canonical JSON encoding for everything that is hashed and later re-checked."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_sha256(body: Any) -> str:
    encoded = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(encoded.encode()).hexdigest()
