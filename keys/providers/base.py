from __future__ import annotations

from typing import Protocol


class RootKeyProvider(Protocol):
    """Wraps and unwraps key-encryption keys; touched only when a KEK version is loaded or made.

    ``key_name`` is the key ring's provider key (an HSM key label; unused by ``local``).
    ``context`` is associated data naming the KEK version, so a wrapped KEK moved to another
    version or key ring fails to unwrap. Errors: ``ProviderUnavailable`` when the provider or the
    key cannot be reached (a removed customer key included), ``Tampered`` when the blob fails
    authentication.
    """

    name: str

    def key_ref(self, key_name: str) -> str:
        """A non-secret identifier of the root key that ``wrap`` uses now, stored beside each KEK."""
        ...

    def wrap(self, key: bytes, *, key_name: str, context: bytes) -> bytes: ...

    def unwrap(self, blob: bytes, *, key_name: str, context: bytes) -> bytes: ...

    def check(self, key_name: str) -> None:
        """Raise ProviderUnavailable unless ``key_name`` is usable right now (for /readyz)."""
        ...

    def close(self) -> None: ...
