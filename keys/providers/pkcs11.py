"""Root keys held in an HSM over PKCS#11: one customer-held AES-256 key per key ring, by label.

The KEK is wrapped inside the HSM with AES-256-GCM (``CKM_AES_GCM``: a random 96-bit IV, the
KEK-version context as associated data, a 128-bit tag), so the root key never leaves the HSM and
a wrapped KEK moved to another version or key ring fails to unwrap, exactly as with the local
provider. Blob: IV (12) ‖ ciphertext (32) ‖ tag (16). ``CKM_AES_KEY_WRAP_PAD`` would need no IV
but binds no context; SoftHSM2 2.6 and python-pkcs11 0.10 do GCM correctly (checked against
``cryptography``'s AES-GCM), so there is no reason to give the associated data up. An HSM whose
FIPS mode refuses caller-chosen GCM IVs would need KEY_WRAP_PAD; the KEK check value kept by
keys/kek.py would then stand in for the lost binding.

Revocation ("customer key"): deleting or disabling the key in the HSM makes every unwrap fail
with ProviderUnavailable. The key is looked up by label on every call and never cached here, so
the only delay is keys/kek.py's cache of unwrapped KEKs (``JIT_KEK_CACHE_SECONDS``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TypeVar

import pkcs11
from django.conf import settings
from pkcs11 import GCMParams, KeyType, Mechanism, ObjectClass
from pkcs11.exceptions import (
    EncryptedDataInvalid,
    EncryptedDataLenRange,
    GeneralError,
    MultipleObjectsReturned,
    NoSuchKey,
    NoSuchToken,
    PinExpired,
    PinIncorrect,
    PinInvalid,
    PinLenRange,
    PinLocked,
    PKCS11Error,
)

from keys import crypto
from keys.errors import ProviderUnavailable, Tampered

_BLOB_BYTES = crypto.NONCE_BYTES + crypto.KEY_BYTES + crypto.TAG_BYTES
_TAG_BITS = crypto.TAG_BYTES * 8
_PIN_REFUSED = (PinIncorrect, PinInvalid, PinLenRange, PinLocked, PinExpired)
# Which process initialised each PKCS#11 module: a forked child (Celery prefork, gunicorn) must
# call C_Initialize again and must never use, or close, a session its parent opened.
_initialised_in: dict[str, int] = {}
_initialise_lock = threading.Lock()

T = TypeVar("T")


def _library(module: str) -> pkcs11.lib:
    with _initialise_lock:
        lib = pkcs11.lib(module)
        if _initialised_in.get(module, os.getpid()) != os.getpid():
            try:
                lib.finalize()
            except PKCS11Error:
                pass  # the parent's state is being discarded either way
            lib.initialize()
        _initialised_in[module] = os.getpid()
        return lib


def _why(exc: PKCS11Error) -> str:
    # python-pkcs11 never puts the PIN into an exception; its messages name the module or the label.
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class Pkcs11RootKeyProvider:
    """AES-256 keys in a PKCS#11 token (``JIT_PKCS11_MODULE``, ``JIT_PKCS11_TOKEN_LABEL``, ``JIT_PKCS11_PIN``).

    One read-only session per process, opened on first use and reopened after an error. A PKCS#11
    session runs one operation at a time, so every call holds the lock; KEK unwraps are rare
    (keys/kek.py caches them), so the lock costs nothing in practice.
    """

    name = "pkcs11"

    def __init__(self) -> None:
        self._module: str = settings.JIT_PKCS11_MODULE
        self._token_label: str = settings.JIT_PKCS11_TOKEN_LABEL
        self._pin: str = settings.JIT_PKCS11_PIN
        self._lock = threading.Lock()
        self._session: pkcs11.Session | None = None
        self._session_pid = 0
        self._pin_refused = ""

    def key_ref(self, key_name: str) -> str:
        return f"pkcs11:{self._token_label}/{key_name}"

    def wrap(self, key: bytes, *, key_name: str, context: bytes) -> bytes:
        if len(key) != crypto.KEY_BYTES:
            raise ValueError(f"only {crypto.KEY_BYTES}-byte keys are wrapped")

        def encrypt(hsm_key: pkcs11.SecretKey) -> bytes:
            iv = os.urandom(crypto.NONCE_BYTES)
            return iv + hsm_key.encrypt(
                key, mechanism=Mechanism.AES_GCM, mechanism_param=GCMParams(iv, context, _TAG_BITS)
            )

        return self._with_key(key_name, encrypt)

    def unwrap(self, blob: bytes, *, key_name: str, context: bytes) -> bytes:
        blob = bytes(blob)
        if len(blob) != _BLOB_BYTES:
            raise Tampered("wrapped key has the wrong length")
        iv, sealed = blob[: crypto.NONCE_BYTES], blob[crypto.NONCE_BYTES :]

        def decrypt(hsm_key: pkcs11.SecretKey) -> bytes:
            param = GCMParams(iv, context, _TAG_BITS)
            try:
                return hsm_key.decrypt(sealed, mechanism=Mechanism.AES_GCM, mechanism_param=param)
            except (EncryptedDataInvalid, EncryptedDataLenRange):
                raise Tampered("wrapped key failed authentication in the HSM") from None
            except GeneralError:
                # SoftHSM2 reports a failed GCM tag as CKR_GENERAL_ERROR, which a sick device could
                # also return. If the same key still round-trips, the device is fine and the blob
                # (or its context) is what failed; otherwise the device is, and the error stands.
                if self._round_trips(hsm_key):
                    raise Tampered("wrapped key failed authentication in the HSM") from None
                raise

        key = self._with_key(key_name, decrypt)
        if len(key) != crypto.KEY_BYTES:
            raise Tampered("wrapped key has the wrong length")
        return key

    def check(self, key_name: str) -> None:
        self._with_key(key_name, lambda hsm_key: None)

    def close(self) -> None:
        with self._lock:
            self._drop_session()

    # --- the session -----------------------------------------------------------------------------

    def _with_key(self, key_name: str, operation: Callable[[pkcs11.SecretKey], T]) -> T:
        """Run ``operation`` on the HSM key labelled ``key_name``, found afresh on this call."""
        where = f"HSM key {key_name!r} on token {self._token_label!r}"
        with self._lock:
            # A session kept from an earlier call may have died with an HSM restart: one retry on a
            # fresh session, so the first reveal after a restart does not fail for nothing.
            for attempt in (1, 2):
                reused = self._session is not None and self._session_pid == os.getpid()
                session = self._open_session()
                try:
                    hsm_key = session.get_key(object_class=ObjectClass.SECRET_KEY, key_type=KeyType.AES, label=key_name)
                    if hsm_key.key_length != crypto.KEY_BYTES * 8:
                        raise ProviderUnavailable(f"{where} is not an AES-256 key")
                    return operation(hsm_key)
                except NoSuchKey:
                    raise ProviderUnavailable(f"{where} was not found (removed, or not visible to this user)") from None
                except MultipleObjectsReturned:
                    raise ProviderUnavailable(f"{where} is ambiguous: more than one key has that label") from None
                except PKCS11Error as exc:
                    self._drop_session()
                    if reused and attempt == 1:
                        continue
                    raise ProviderUnavailable(f"{where} cannot be used ({_why(exc)})") from None
        raise AssertionError("unreachable")

    def _open_session(self) -> pkcs11.Session:
        if self._session is not None and self._session_pid == os.getpid():
            return self._session
        self._session = None  # opened by the parent of this forked process: not ours to use or close
        token = repr(self._token_label)
        if not self._module:
            raise ProviderUnavailable(f"no PKCS#11 module is configured (JIT_PKCS11_MODULE) for token {token}")
        if self._pin_refused:
            raise ProviderUnavailable(self._pin_refused)
        try:
            lib = _library(self._module)
            self._session = lib.get_token(token_label=self._token_label).open(user_pin=self._pin)
        except NoSuchToken:
            raise ProviderUnavailable(f"HSM token {token} was not found in {self._module}") from None
        except _PIN_REFUSED as exc:
            # Never try a refused PIN again in this process: an HSM locks the user after a few
            # wrong PINs, and that would lock the customer out of their own key.
            self._pin_refused = f"HSM token {token} refused the PIN ({type(exc).__name__}); fix JIT_PKCS11_PIN"
            raise ProviderUnavailable(self._pin_refused) from None
        except PKCS11Error as exc:
            raise ProviderUnavailable(f"HSM token {token} cannot be opened ({_why(exc)})") from None
        self._session_pid = os.getpid()
        return self._session

    def _drop_session(self) -> None:
        session, self._session = self._session, None
        if session is not None and self._session_pid == os.getpid():
            try:
                session.close()
            except PKCS11Error:
                pass  # already closed by the HSM; nothing left to release

    def _round_trips(self, hsm_key: pkcs11.SecretKey) -> bool:
        probe, iv = os.urandom(crypto.KEY_BYTES), os.urandom(crypto.NONCE_BYTES)
        param = GCMParams(iv, b"jitaccess/pkcs11-probe", _TAG_BITS)
        try:
            sealed = hsm_key.encrypt(probe, mechanism=Mechanism.AES_GCM, mechanism_param=param)
            return hsm_key.decrypt(sealed, mechanism=Mechanism.AES_GCM, mechanism_param=param) == probe
        except PKCS11Error:
            return False
