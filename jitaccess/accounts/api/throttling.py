from __future__ import annotations

import hashlib
from typing import Any

from rest_framework.throttling import SimpleRateThrottle


class UsernameRateThrottle(SimpleRateThrottle):
    """Limits sign-in attempts per username, whatever address they come from, so password
    guessing against one account cannot be spread across many clients."""

    scope = "auth-token-user"

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        username = request.data.get("username") if hasattr(request.data, "get") else None
        if not isinstance(username, str) or not username:
            return None
        # Hashed: the name is whatever the client sent, and a cache key must stay short and plain.
        ident = hashlib.sha256(username.strip().lower()[:150].encode()).hexdigest()
        return self.cache_format % {"scope": self.scope, "ident": ident}
