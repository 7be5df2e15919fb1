"""What a secret's kind, metadata and value may be: pure checks, no queries."""

from __future__ import annotations

import json
import re
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from jitaccess.errors import InvalidInput
from keys.models import SecretKind

MAX_VALUE_BYTES = 64 * 1024
MAX_METADATA_BYTES = 4 * 1024
MAIL_PROVIDERS = ("gmail", "yahoo", "outlook", "imap")
CREDENTIAL_TYPES = ("password", "oauth_refresh_token")
_CONNECTED_ACCOUNT_FIELDS = {"provider", "account_address", "username", "credential_type", "host", "notes"}
# Metadata is stored and listed in clear: a key that says it holds a secret is refused, whatever
# its prefix or suffix ("api_key", "client_secret", "db_password"...). "credential_type" names a
# kind of credential, not one.
_SECRET_WORDS = ("password", "passwd", "secret", "token", "credential", "privatekey", "apikey")
_SECRET_KEYS = {"key", "value", "plaintext", "otp", "pin"}  # too short to match inside other words
_NOT_SECRET_KEYS = {"credentialtype"}


def _looks_secret(key: str) -> bool:
    normalised = re.sub(r"[^a-z0-9]", "", key.lower())
    if normalised in _NOT_SECRET_KEYS:
        return False
    return normalised in _SECRET_KEYS or any(word in normalised for word in _SECRET_WORDS)


def kind_checked(kind: Any) -> str:
    if kind not in SecretKind.values:
        raise InvalidInput("kind", f"Unknown kind {kind!r}; one of: {', '.join(SecretKind.values)}.")
    return kind


def storable_text_problem(text: str) -> str | None:
    """Why PostgreSQL text / jsonb would refuse ``text`` (a 500 otherwise), or None."""
    if "\x00" in text:
        return "may not contain NUL characters"
    try:
        text.encode()
    except UnicodeEncodeError:
        return "may not contain unpaired surrogate characters"
    return None


def value_checked(value: Any) -> bytes:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("value", "A secret value is required and may not be blank.")
    try:
        raw = value.encode()
    except UnicodeEncodeError:
        raise InvalidInput("value", "May not contain unpaired surrogate characters.") from None
    if len(raw) > MAX_VALUE_BYTES:
        raise InvalidInput("value", f"At most {MAX_VALUE_BYTES} bytes.")
    return raw


def metadata_checked(kind: str, metadata: Any) -> dict[str, Any]:
    """Metadata is stored in clear, so it must be a small flat object with no secret-looking keys."""
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise InvalidInput("metadata", "Must be a JSON object.")
    for key, item in metadata.items():
        problem = storable_text_problem(key) or (storable_text_problem(item) if isinstance(item, str) else None)
        if problem:
            raise InvalidInput("metadata", f"Keys and values {problem}.")
        if _looks_secret(key):
            raise InvalidInput("metadata", f"{key!r} looks like a secret; put secrets in value, not metadata.")
        if not isinstance(item, str | int | float | bool) and item is not None:
            raise InvalidInput("metadata", f"{key!r} must be a string, number, boolean or null.")
    if len(json.dumps(metadata)) > MAX_METADATA_BYTES:
        raise InvalidInput("metadata", f"At most {MAX_METADATA_BYTES} bytes of JSON.")
    if kind == SecretKind.CONNECTED_ACCOUNT:
        return _connected_account_checked(metadata)
    return metadata


def _connected_account_checked(metadata: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(metadata) - _CONNECTED_ACCOUNT_FIELDS)
    if unknown:
        raise InvalidInput("metadata", f"Unknown field(s) for a connected account: {', '.join(unknown)}.")
    if metadata.get("provider") not in MAIL_PROVIDERS:
        raise InvalidInput("metadata", f"provider must be one of: {', '.join(MAIL_PROVIDERS)}.")
    address = metadata.get("account_address")
    try:
        if not isinstance(address, str):
            raise ValidationError("not a string")
        validate_email(address)
    except ValidationError:
        raise InvalidInput("metadata", "account_address must be an e-mail address.") from None
    if metadata.get("credential_type") not in CREDENTIAL_TYPES:
        raise InvalidInput("metadata", f"credential_type must be one of: {', '.join(CREDENTIAL_TYPES)}.")
    username = metadata.get("username", address)
    if not isinstance(username, str) or not username.strip():
        raise InvalidInput("metadata", "username must be a non-empty string.")
    return {**metadata, "username": username}
