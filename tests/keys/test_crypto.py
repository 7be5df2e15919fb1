"""The envelope: round trip, binding to its context, and three kinds of failure kept apart."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keys import crypto
from keys.errors import Tampered, WrongKey

KEK_V1 = crypto.Kek(b"\x01" * 32, 1)
KEK_V2 = crypto.Kek(b"\x02" * 32, 2)
CONTEXT = crypto.aad("secret", 7, "0b5f0a9e-0000-4000-8000-000000000001", 1)


def lookup(version: int) -> crypto.Kek:
    keks = {1: KEK_V1, 2: KEK_V2}
    if version not in keks:
        raise WrongKey(f"no version {version}")
    return keks[version]


def test_it_opens_what_it_sealed_and_names_the_kek_version_in_the_header():
    envelope = crypto.seal(KEK_V1, b"hunter2", CONTEXT)

    assert crypto.unseal(envelope, lookup, CONTEXT) == b"hunter2"
    assert crypto.envelope_kek_version(envelope) == 1
    assert len(envelope) == crypto.OVERHEAD_BYTES + len(b"hunter2")
    assert b"hunter2" not in envelope


def test_it_uses_a_fresh_data_key_and_nonce_every_time():
    assert crypto.seal(KEK_V1, b"same", CONTEXT) != crypto.seal(KEK_V1, b"same", CONTEXT)


@pytest.mark.parametrize(
    "other_context",
    [
        crypto.aad("secret", 8, "0b5f0a9e-0000-4000-8000-000000000001", 1),  # another key ring
        crypto.aad("secret", 7, "0b5f0a9e-0000-4000-8000-000000000002", 1),  # another secret
        crypto.aad("secret", 7, "0b5f0a9e-0000-4000-8000-000000000001", 2),  # another value version
    ],
)
def test_it_refuses_an_envelope_moved_to_another_context(other_context):
    envelope = crypto.seal(KEK_V1, b"hunter2", CONTEXT)

    with pytest.raises(Tampered):
        crypto.unseal(envelope, lookup, other_context)


def test_it_keeps_field_boundaries_in_the_associated_data():
    assert crypto.aad("ab", "c") != crypto.aad("a", "bc")


@settings(max_examples=200, deadline=None)
@given(position=st.integers(min_value=0), flip=st.integers(min_value=1, max_value=255))
def test_it_detects_any_altered_byte(position, flip):
    envelope = bytearray(crypto.seal(KEK_V1, b"a mailbox password", CONTEXT))
    position %= len(envelope)
    envelope[position] ^= flip

    # A changed KEK version may name a key that does not exist: that is "wrong key", not a pass.
    with pytest.raises((Tampered, WrongKey)):
        crypto.unseal(bytes(envelope), lookup, CONTEXT)


@pytest.mark.parametrize("cut", [0, 1, 10, crypto.OVERHEAD_BYTES - 1])
def test_it_refuses_a_truncated_envelope_as_tampered(cut):
    envelope = crypto.seal(KEK_V1, b"x", CONTEXT)

    with pytest.raises(Tampered):
        crypto.unseal(envelope[:cut], lookup, CONTEXT)


def test_it_tells_a_wrong_key_from_tampering():
    envelope = crypto.seal(KEK_V1, b"x", CONTEXT)
    impostor = crypto.Kek(b"\x09" * 32, 1)

    with pytest.raises(Tampered):
        crypto.unseal(envelope, lambda version: impostor, CONTEXT)
    with pytest.raises(WrongKey):
        crypto.unseal(crypto.seal(crypto.Kek(b"\x03" * 32, 3), b"x", CONTEXT), lookup, CONTEXT)


def test_it_rewraps_only_the_data_key_and_leaves_the_sealed_value_alone():
    envelope = crypto.seal(KEK_V1, b"hunter2", CONTEXT)

    rewrapped = crypto.rewrap(envelope, KEK_V1, KEK_V2, CONTEXT)

    assert crypto.envelope_kek_version(rewrapped) == 2
    assert rewrapped[-(7 + 16 + 12) :] == envelope[-(7 + 16 + 12) :]  # nonce, ciphertext, tag
    assert crypto.unseal(rewrapped, lookup, CONTEXT) == b"hunter2"
    with pytest.raises(WrongKey):
        crypto.rewrap(rewrapped, KEK_V1, KEK_V2, CONTEXT)


def test_it_refuses_a_wrapped_data_key_replayed_under_another_version():
    envelope = bytearray(crypto.seal(KEK_V1, b"x", CONTEXT))
    envelope[4:8] = (2).to_bytes(4, "big")  # claims version 2; the wrap was bound to version 1

    with pytest.raises(Tampered):
        crypto.unseal(bytes(envelope), lambda version: crypto.Kek(b"\x01" * 32, version), CONTEXT)


def test_it_wraps_keys_under_the_root_with_associated_data():
    root = b"\x05" * 32
    kek = crypto.new_key()
    blob = crypto.wrap_key(root, kek, b"ctx")

    assert crypto.unwrap_key(root, blob, b"ctx") == kek
    with pytest.raises(Tampered):
        crypto.unwrap_key(root, blob, b"other")
    with pytest.raises(Tampered):
        crypto.unwrap_key(root, blob[:-1], b"ctx")
