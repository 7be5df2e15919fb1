"""Why a key operation failed, in three kinds an operator must never confuse (keys_anchors §3.6).

None of these carry key material or plaintext, so they are safe to log and to audit by name.
"""

from __future__ import annotations


class KeyFailure(Exception):
    """Base of the key errors; ``code`` is what the audit trail and the API report."""

    code = "key_error"


class WrongKey(KeyFailure):
    """The key at hand is not the one the data was sealed with: a configuration problem.

    Raised when a key-encryption key unwraps but its check value differs (wrong root key
    configured), or when the envelope names a key version that does not exist or was destroyed.
    """

    code = "wrong_key"


class Tampered(KeyFailure):
    """The envelope is malformed, truncated, altered, or belongs to another row."""

    code = "tampered"


class ProviderUnavailable(KeyFailure):
    """The root-key provider cannot be reached or no longer holds the key (e.g. a removed HSM key)."""

    code = "provider_unavailable"
