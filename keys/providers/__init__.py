"""Root-key providers: where the key that wraps every key-encryption key lives.

A key ring names its provider (and, for an HSM, the label of its key), so one key ring can sit
under a customer-held HSM key while the others use the service's own root key.
"""

from __future__ import annotations

import threading

from django.utils.module_loading import import_string

from keys.errors import ProviderUnavailable
from keys.providers.base import RootKeyProvider

PROVIDERS = {
    "local": "keys.providers.local.LocalRootKeyProvider",
    "pkcs11": "keys.providers.pkcs11.Pkcs11RootKeyProvider",
}

_instances: dict[str, RootKeyProvider] = {}
_lock = threading.Lock()


def provider_for(name: str) -> RootKeyProvider:
    """The process-wide instance of a provider, built on first use from the settings."""
    if name not in PROVIDERS:
        raise ProviderUnavailable(f"unknown root-key provider {name!r}")
    with _lock:
        if name not in _instances:
            _instances[name] = import_string(PROVIDERS[name])()
        return _instances[name]


def reset() -> None:
    """Forget every provider instance (the settings changed, or an HSM session must be reopened)."""
    with _lock:
        for provider in _instances.values():
            provider.close()
        _instances.clear()
