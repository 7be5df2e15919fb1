from __future__ import annotations

from django.conf import settings

from keys import crypto


class LocalRootKeyProvider:
    """The service's own root key, from ``JIT_ROOT_KEY`` / ``JIT_ROOT_KEY_FILE`` (never the database).

    The settings refuse to start without it outside DEBUG, and never accept the development key
    in production (jitaccess.env.env_key). It is never derived from ``SECRET_KEY``.
    """

    name = "local"

    def __init__(self) -> None:
        self._root = settings.JIT_ROOT_KEY
        self._ref = "local:" + crypto.key_check_value(self._root)[:4].hex()

    def key_ref(self, key_name: str) -> str:
        return self._ref

    def wrap(self, key: bytes, *, key_name: str, context: bytes) -> bytes:
        return crypto.wrap_key(self._root, key, context)

    def unwrap(self, blob: bytes, *, key_name: str, context: bytes) -> bytes:
        return crypto.unwrap_key(self._root, blob, context)

    def check(self, key_name: str) -> None:
        return None

    def close(self) -> None:
        return None
