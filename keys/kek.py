"""Key-encryption keys: made and wrapped by the ring's root-key provider, unwrapped on demand.

Unwrapped KEKs are cached per process for ``JIT_KEK_CACHE_SECONDS`` so the provider (an HSM, say)
is touched a few times per process rather than once per reveal. Only KEKs are cached: data keys
and values never outlive the call that opened them (keys_anchors §5, pitfall 13). A cached entry is
used only while the stored row still matches it, so a destroyed or re-wrapped version is never
served from memory; a removed customer key stops working once the entry ages out.
"""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Callable
from datetime import datetime

from django.conf import settings

from keys import crypto
from keys.errors import WrongKey
from keys.models import KeyRing, KeyState, KeyVersion
from keys.providers import provider_for

_cache: dict[tuple[int, int], tuple[float, bytes, crypto.Kek]] = {}
_cache_lock = threading.Lock()


def _context(keyring: KeyRing, version: int) -> bytes:
    return crypto.aad("kek", keyring.pk, version)


def _cached(slot: tuple[int, int], wrapped: bytes | None = None) -> crypto.Kek | None:
    """A fresh cache entry for the slot (and, if given, for exactly this wrapped material)."""
    entry = _cache.get(slot)
    if entry is None or time.monotonic() - entry[0] >= settings.JIT_KEK_CACHE_SECONDS:
        return None
    if wrapped is not None and entry[1] != wrapped:
        return None
    return entry[2]


def kek_new(keyring: KeyRing, *, version: int, state: str, now: datetime) -> KeyVersion:
    """A new KEK version, wrapped by the ring's root key and saved before anything uses it."""
    provider = provider_for(keyring.provider)
    key = crypto.new_key()
    wrapped = provider.wrap(key, key_name=keyring.provider_key, context=_context(keyring, version))
    return KeyVersion.objects.create(
        keyring=keyring,
        version=version,
        state=state,
        wrapped_key=wrapped,
        check_value=crypto.key_check_value(key),
        root_ref=provider.key_ref(keyring.provider_key),
        created_at=now,
    )


def kek_open(row: KeyVersion, keyring: KeyRing) -> crypto.Kek:
    """The unwrapped KEK of ``row``; WrongKey / Tampered / ProviderUnavailable say why not."""
    if row.state == KeyState.DESTROYED or row.wrapped_key is None:
        raise WrongKey(f"key version {row.version} of {keyring.name} was destroyed")
    wrapped = bytes(row.wrapped_key)
    slot = (keyring.pk, row.version)
    cached = _cached(slot, wrapped)
    if cached is not None:
        return cached
    provider = provider_for(keyring.provider)
    current_ref = provider.key_ref(keyring.provider_key)
    if row.root_ref != current_ref:
        raise WrongKey(
            f"key version {row.version} of {keyring.name} was wrapped by root key {row.root_ref}, "
            f"but {current_ref} is configured"
        )
    key = provider.unwrap(wrapped, key_name=keyring.provider_key, context=_context(keyring, row.version))
    if not hmac.compare_digest(crypto.key_check_value(key), bytes(row.check_value)):
        raise WrongKey(f"key version {row.version} of {keyring.name} does not match its check value")
    kek = crypto.Kek(key, row.version)
    if settings.JIT_KEK_CACHE_SECONDS > 0:
        with _cache_lock:
            _cache[slot] = (time.monotonic(), wrapped, kek)
    return kek


def kek_lookup(keyring: KeyRing) -> Callable[[int], crypto.Kek]:
    """``version -> Kek`` for one ring, reading each version row when it is first asked for."""
    opened: dict[int, crypto.Kek] = {}

    def lookup(version: int) -> crypto.Kek:
        if version not in opened:
            # The caller holds a row that refers to this version, and a referenced version is never
            # destroyed (migration 0002's trigger), so a fresh cache entry is still the right key.
            cached = _cached((keyring.pk, version))
            if cached is not None:
                opened[version] = cached
                return cached
            row = KeyVersion.objects.filter(keyring=keyring, version=version).first()
            if row is None:
                raise WrongKey(f"{keyring.name} has no key version {version}")
            opened[version] = kek_open(row, keyring)
        return opened[version]

    return lookup


def kek_cache_clear() -> None:
    with _cache_lock:
        _cache.clear()
