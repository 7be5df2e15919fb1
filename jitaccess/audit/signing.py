"""Ed25519 signatures over checkpoints of the chain head.

The signing seed is configuration (``JIT_AUDIT_SIGNING_KEY``), separate from every encryption
key; verification trusts the current key's public half and any retired ones listed in
``JIT_AUDIT_TRUSTED_KEYS``, so a database administrator cannot mint a checkpoint that verifies.
"""

from __future__ import annotations

import base64
import binascii
from functools import lru_cache
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from jitaccess.canonical import canonical_time

CHECKPOINT_FORMAT = 1


@lru_cache(maxsize=4)
def _private_key(seed: bytes) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(seed)


def _raw_public(key: Ed25519PublicKey) -> str:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def signing_public_key() -> str:
    """Hex of the current signing key's public half."""
    return _raw_public(_private_key(settings.JIT_AUDIT_SIGNING_KEY).public_key())


def _decode_public(text: str) -> str:
    text = text.strip()
    try:
        raw = bytes.fromhex(text) if len(text) == 64 else base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        raw = b""
    if len(raw) != 32:
        raise ImproperlyConfigured("JIT_AUDIT_TRUSTED_KEYS must list 32-byte Ed25519 public keys (hex or base64)")
    return raw.hex()


def trusted_public_keys() -> frozenset[str]:
    return frozenset({signing_public_key(), *(_decode_public(k) for k in settings.JIT_AUDIT_TRUSTED_KEYS)})


def checkpoint_message(*, seq: int, head_hash: str, at: Any, public_key: str) -> bytes:
    """The exact bytes that are signed: nothing about a checkpoint is left unsigned."""
    fields = (f"v{CHECKPOINT_FORMAT}", str(seq), head_hash, canonical_time(at), public_key)
    return ("jitaccess-audit-checkpoint:" + ":".join(fields)).encode()


def sign_checkpoint(*, seq: int, head_hash: str, at: Any) -> tuple[str, str]:
    """Return ``(public_key_hex, signature_hex)`` for a checkpoint of the head ``seq``/``head_hash``."""
    key = _private_key(settings.JIT_AUDIT_SIGNING_KEY)
    public_key = _raw_public(key.public_key())
    signature = key.sign(checkpoint_message(seq=seq, head_hash=head_hash, at=at, public_key=public_key))
    return public_key, signature.hex()


def signature_problem(*, seq: int, head_hash: str, at: Any, public_key: str, signature: str) -> str | None:
    """Why a checkpoint's signature cannot be trusted, or None when it is good."""
    if public_key not in trusted_public_keys():
        return "signed by a key that is not trusted"
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key)).verify(
            bytes.fromhex(signature), checkpoint_message(seq=seq, head_hash=head_hash, at=at, public_key=public_key)
        )
    except (InvalidSignature, ValueError):
        return "signature does not verify"
    return None
