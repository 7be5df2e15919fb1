"""The cryptography of the keys app: the only module that imports ``cryptography``.

Hierarchy (DESIGN.md §9): a root key held by a provider wraps each key-encryption key (KEK)
version of a key ring; a KEK wraps one fresh data key (DEK) per secret value; the DEK seals the
value with AES-256-GCM. Everything is AES-256-GCM with a random 96-bit nonce from ``os.urandom``:
a DEK seals exactly one message, so only KEK wraps spend a key's nonce budget.

Envelope (binary, self-describing; 97 bytes of overhead)::

    offset size  field
    0      2     magic b"JK"
    2      1     format version (1)
    3      1     algorithm (1 = AES-256-GCM for the DEK wrap and the payload)
    4      4     KEK version, unsigned big-endian
    8      1     length of the wrapped DEK (60)
    9      60    wrapped DEK: nonce(12) ‖ AES-GCM(KEK, DEK, aad = "dek" context ‖ KEK version)
    69     12    payload nonce
    81     n+16  AES-GCM(DEK, value, aad = bytes 0..3 ‖ "secret" context)

The payload's associated data covers the format and algorithm but not the KEK version or the
wrapped DEK, so a rewrap replaces only the wrapped DEK and never touches the payload; the wrapped
DEK is bound to its KEK version by its own associated data. Both bind the secret's identity (the
caller's context), so an envelope moved to another row fails to open. The version in the header
means no trial decryption across keys (GCM is not key-committing).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from collections.abc import Callable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from keys.errors import Tampered, WrongKey

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
MAGIC = b"JK"
FORMAT_VERSION = 1
ALG_AES256_GCM = 1

_PREFIX = struct.Struct(">2sBBIB")  # magic, format, alg, KEK version, wrapped-DEK length
_WRAPPED_KEY_BYTES = NONCE_BYTES + KEY_BYTES + TAG_BYTES
_HEADER_BYTES = _PREFIX.size + _WRAPPED_KEY_BYTES + NONCE_BYTES
OVERHEAD_BYTES = _HEADER_BYTES + TAG_BYTES
_AAD_LABEL = b"jitaccess-aad/v1"


def new_key() -> bytes:
    return os.urandom(KEY_BYTES)


def aad(*parts: str | int | bytes) -> bytes:
    """Canonical associated data: each part length-prefixed, so boundaries cannot be forged."""
    out = bytearray(_AAD_LABEL)
    for part in parts:
        raw = part if isinstance(part, bytes) else str(part).encode()
        out += struct.pack(">H", len(raw)) + raw
    return bytes(out)


def key_check_value(key: bytes) -> bytes:
    """Eight bytes that identify a key without revealing it: tells "wrong key" from "tampered"."""
    return hmac.new(key, b"jitaccess/kcv/v1", hashlib.sha256).digest()[:8]


def wrap_key(wrapping_key: bytes, key: bytes, associated_data: bytes) -> bytes:
    """nonce ‖ AES-256-GCM(wrapping_key, key): how the local root key wraps a KEK."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(wrapping_key).encrypt(nonce, key, associated_data)


def unwrap_key(wrapping_key: bytes, blob: bytes, associated_data: bytes) -> bytes:
    if len(blob) != _WRAPPED_KEY_BYTES:
        raise Tampered("wrapped key has the wrong length")
    try:
        return AESGCM(wrapping_key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], associated_data)
    except InvalidTag:
        raise Tampered("wrapped key failed authentication") from None


class Kek:
    """One unwrapped key-encryption key version, with its cipher object built once."""

    __slots__ = ("_cipher", "version")

    def __init__(self, key: bytes, version: int) -> None:
        if len(key) != KEY_BYTES:
            raise WrongKey("a key-encryption key must be 32 bytes")
        self._cipher = AESGCM(key)
        self.version = version

    def wrap_dek(self, dek: bytes, context: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._cipher.encrypt(nonce, dek, _dek_aad(context, self.version))

    def unwrap_dek(self, wrapped: bytes, context: bytes) -> bytes:
        try:
            return self._cipher.decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], _dek_aad(context, self.version))
        except InvalidTag:
            raise Tampered("data key failed authentication (altered, or moved from another secret)") from None


def _dek_aad(context: bytes, kek_version: int) -> bytes:
    return b"dek" + struct.pack(">I", kek_version) + context


def _payload_aad(context: bytes) -> bytes:
    return MAGIC + bytes((FORMAT_VERSION, ALG_AES256_GCM)) + context


def seal(kek: Kek, plaintext: bytes, context: bytes) -> bytes:
    """Seal ``plaintext`` under a fresh data key wrapped by ``kek``; ``context`` names the secret."""
    dek = new_key()
    nonce = os.urandom(NONCE_BYTES)
    prefix = _PREFIX.pack(MAGIC, FORMAT_VERSION, ALG_AES256_GCM, kek.version, _WRAPPED_KEY_BYTES)
    body = AESGCM(dek).encrypt(nonce, plaintext, _payload_aad(context))
    return prefix + kek.wrap_dek(dek, context) + nonce + body


def envelope_kek_version(envelope: bytes) -> int:
    """The KEK version named in the header; raises Tampered if the envelope is malformed."""
    if len(envelope) < OVERHEAD_BYTES:
        raise Tampered("envelope is truncated")
    magic, fmt, alg, kek_version, wrapped_len = _PREFIX.unpack_from(envelope)
    if magic != MAGIC or wrapped_len != _WRAPPED_KEY_BYTES:
        raise Tampered("not an envelope")
    if fmt != FORMAT_VERSION or alg != ALG_AES256_GCM:
        raise Tampered(f"unknown envelope format {fmt} / algorithm {alg}")
    return kek_version


def unseal(envelope: bytes, kek_for: Callable[[int], Kek], context: bytes) -> bytes:
    """Open an envelope; ``kek_for(version)`` supplies the KEK it names (or raises WrongKey)."""
    envelope = bytes(envelope)
    kek = kek_for(envelope_kek_version(envelope))
    dek = kek.unwrap_dek(envelope[_PREFIX.size : _PREFIX.size + _WRAPPED_KEY_BYTES], context)
    nonce = envelope[_HEADER_BYTES - NONCE_BYTES : _HEADER_BYTES]
    try:
        return AESGCM(dek).decrypt(nonce, envelope[_HEADER_BYTES:], _payload_aad(context))
    except InvalidTag:
        raise Tampered("value failed authentication (altered, or moved from another secret)") from None


def rewrap(envelope: bytes, old: Kek, new: Kek, context: bytes) -> bytes:
    """The same envelope with its data key re-wrapped under ``new``; the payload is untouched."""
    envelope = bytes(envelope)
    if envelope_kek_version(envelope) != old.version:
        raise WrongKey("envelope is not under the expected key version")
    start, end = _PREFIX.size, _PREFIX.size + _WRAPPED_KEY_BYTES
    dek = old.unwrap_dek(envelope[start:end], context)
    prefix = _PREFIX.pack(MAGIC, FORMAT_VERSION, ALG_AES256_GCM, new.version, _WRAPPED_KEY_BYTES)
    return prefix + new.wrap_dek(dek, context) + envelope[end:]


def aes_gcm_decrypt(key: bytes, nonce: bytes, data: bytes, associated_data: bytes) -> bytes:
    """A bare AES-256-GCM decrypt: the baseline the envelope is measured against in bench/keys.py."""
    return AESGCM(key).decrypt(nonce, data, associated_data)


def aes_gcm_encrypt(key: bytes, nonce: bytes, data: bytes, associated_data: bytes) -> bytes:
    return AESGCM(key).encrypt(nonce, data, associated_data)
