"""The signature: what the server sends verifies with the snippet in docs/WEBHOOKS.md, and
nothing else does (another body, another secret, an old time, a malformed header)."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from jitaccess.audit.actions import KNOWN_ACTIONS
from jitaccess.webhooks import signing
from jitaccess.webhooks.events import WEBHOOK_EVENTS

DOC = Path(__file__).resolve().parents[2] / "docs" / "WEBHOOKS.md"


def documented_verifier() -> Any:
    [snippet] = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    namespace: dict[str, Any] = {}
    exec(snippet, namespace)  # noqa: S102 — our own documentation, run as a receiver would
    return namespace["signature_valid"]


def test_a_signature_verifies_with_the_documented_snippet_and_only_for_its_body_and_secret():
    verify = documented_verifier()
    secret, body = signing.new_signing_secret(), b'{"event":"grant.issued","id":"x"}'
    header = signing.signature(secret, body, timestamp=int(time.time()))

    assert re.fullmatch(r"t=\d+,v1=[0-9a-f]{64}", header)
    assert verify(secret, body, header)
    assert signing.signature_valid(secret, body, header)
    assert not verify(secret, body + b" ", header)
    assert not verify(signing.new_signing_secret(), body, header)
    assert not verify(secret, body, header.replace("v1=", "v1=0"))
    for malformed in ("", "t=abc,v1=00", "v1=00", "garbage"):
        assert not verify(secret, body, malformed)


def test_an_old_or_future_timestamp_is_rejected():
    verify = documented_verifier()
    secret, body = signing.new_signing_secret(), b"{}"
    for skew in (-301, 301, -3600):
        header = signing.signature(secret, body, timestamp=int(time.time()) + skew)
        assert not verify(secret, body, header)
        assert not signing.signature_valid(secret, body, header)


def test_the_secret_is_32_random_bytes_with_a_recognisable_prefix():
    first, second = signing.new_signing_secret(), signing.new_signing_secret()
    assert re.fullmatch(r"whsec_[0-9a-f]{64}", first) and first != second


def test_every_webhook_event_is_a_known_audit_action():
    assert set(WEBHOOK_EVENTS) <= KNOWN_ACTIONS
    assert len(set(WEBHOOK_EVENTS)) == len(WEBHOOK_EVENTS)
