"""The HSM root-key provider against a private SoftHSM2 token (keys/providers/pkcs11.py).

SoftHSM2 is required, never skipped: CI installs it (.ci/run). The keys are made and destroyed
by a separate process, as a customer's own HSM tooling would, so these tests also show that a
running process notices a key removed behind its back.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from approvals import services as approval_services
from approvals.models import SecurityGroup
from jitaccess.audit.models import AuditEvent, Outcome
from jitaccess.errors import Unavailable
from keys import crypto, providers, services
from keys.errors import ProviderUnavailable, Tampered
from keys.kek import kek_cache_clear
from keys.models import KeyVersion
from keys.reveal import secret_reveal

TOKEN = "jit-test"
PIN = "1234"
RING_KEY = "jit-ring-a"

# Run in a child process with the token's SOFTHSM2_CONF: argv = module, token, action, label.
_HSM_ADMIN = """
import os, sys
import pkcs11
from pkcs11 import Attribute, KeyType, MechanismFlag, ObjectClass
module, token, action, label = sys.argv[1:]
with pkcs11.lib(module).get_token(token_label=token).open(user_pin=os.environ["HSM_PIN"], rw=True) as session:
    if action == "create":
        session.generate_key(
            KeyType.AES, 256, label=label, store=True,
            capabilities=MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT,
            template={Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False},
        )
    else:
        session.get_key(object_class=ObjectClass.SECRET_KEY, key_type=KeyType.AES, label=label).destroy()
"""


class SoftHsm:
    def __init__(self, module: str, conf: Path) -> None:
        self.module = module
        self.conf = conf

    def _admin(self, action: str, label: str) -> None:
        env = {**os.environ, "SOFTHSM2_CONF": str(self.conf), "HSM_PIN": PIN}
        subprocess.run([sys.executable, "-c", _HSM_ADMIN, self.module, TOKEN, action, label], env=env, check=True)

    def create_key(self, label: str) -> str:
        self._admin("create", label)
        return label

    def destroy_key(self, label: str) -> None:
        self._admin("destroy", label)


def _softhsm_module() -> str:
    candidates = ["/usr/lib/softhsm/libsofthsm2.so", *sorted(glob.glob("/usr/lib/*/softhsm/libsofthsm2.so"))]
    candidates.append("/usr/local/lib/softhsm/libsofthsm2.so")
    found = [path for path in candidates if os.path.exists(path)]
    if not found or not shutil.which("softhsm2-util"):
        pytest.fail("SoftHSM2 is not installed (apt-get install softhsm2); the HSM tests must run, not skip")
    return found[0]


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Any:
    module = _softhsm_module()
    root = tmp_path_factory.mktemp("softhsm")
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    with pytest.MonkeyPatch.context() as patch:
        # Read by SoftHSM2 when the module is first initialised in this process, i.e. after this.
        patch.setenv("SOFTHSM2_CONF", str(conf))
        subprocess.run(
            ["softhsm2-util", "--init-token", "--free", "--label", TOKEN, "--pin", PIN, "--so-pin", "5678"],
            check=True,
            capture_output=True,
        )
        hsm = SoftHsm(module, conf)
        hsm.create_key(RING_KEY)
        yield hsm


@pytest.fixture
def hsm(softhsm: SoftHsm, settings: Any) -> Any:
    settings.JIT_PKCS11_MODULE = softhsm.module
    settings.JIT_PKCS11_TOKEN_LABEL = TOKEN
    settings.JIT_PKCS11_PIN = PIN
    providers.reset()
    kek_cache_clear()
    yield softhsm
    providers.reset()
    kek_cache_clear()


CONTEXT = crypto.aad("kek", 1, 1)


def wrapped_kek(key: bytes) -> bytes:
    return providers.provider_for("pkcs11").wrap(key, key_name=RING_KEY, context=CONTEXT)


# --- the provider ---------------------------------------------------------------------------------


def test_it_wraps_and_unwraps_a_key_inside_the_hsm(hsm):
    provider = providers.provider_for("pkcs11")
    key = crypto.new_key()

    blob = provider.wrap(key, key_name=RING_KEY, context=CONTEXT)

    assert len(blob) == 60 and key not in blob
    assert blob != provider.wrap(key, key_name=RING_KEY, context=CONTEXT)  # a fresh IV each time
    assert provider.unwrap(blob, key_name=RING_KEY, context=CONTEXT) == key
    assert provider.key_ref(RING_KEY) == f"pkcs11:{TOKEN}/{RING_KEY}"
    provider.check(RING_KEY)


def test_it_refuses_a_blob_unwrapped_with_another_context(hsm):
    blob = wrapped_kek(crypto.new_key())

    with pytest.raises(Tampered):
        providers.provider_for("pkcs11").unwrap(blob, key_name=RING_KEY, context=crypto.aad("kek", 1, 2))


@pytest.mark.parametrize("position", [0, 11, 12, 43, 44, 59], ids=lambda p: f"byte{p}")
def test_it_refuses_a_blob_with_a_flipped_byte(hsm, position):
    blob = bytearray(wrapped_kek(crypto.new_key()))
    blob[position] ^= 0x01

    with pytest.raises(Tampered):
        providers.provider_for("pkcs11").unwrap(bytes(blob), key_name=RING_KEY, context=CONTEXT)


def test_it_refuses_a_truncated_blob(hsm):
    blob = wrapped_kek(crypto.new_key())

    with pytest.raises(Tampered):
        providers.provider_for("pkcs11").unwrap(blob[:-1], key_name=RING_KEY, context=CONTEXT)


def test_it_keeps_working_after_a_refused_blob(hsm):
    key = crypto.new_key()
    blob = wrapped_kek(key)
    provider = providers.provider_for("pkcs11")
    with pytest.raises(Tampered):
        provider.unwrap(blob, key_name=RING_KEY, context=b"other")

    assert provider.unwrap(blob, key_name=RING_KEY, context=CONTEXT) == key


def test_it_reports_an_unknown_label_as_unavailable(hsm):
    provider = providers.provider_for("pkcs11")

    with pytest.raises(ProviderUnavailable, match="no-such-key"):
        provider.wrap(crypto.new_key(), key_name="no-such-key", context=CONTEXT)
    with pytest.raises(ProviderUnavailable, match="no-such-key"):
        provider.unwrap(wrapped_kek(crypto.new_key()), key_name="no-such-key", context=CONTEXT)
    with pytest.raises(ProviderUnavailable, match="no-such-key"):
        provider.check("no-such-key")


def test_it_reports_a_wrong_pin_as_unavailable_without_naming_it(hsm, settings):
    settings.JIT_PKCS11_PIN = "9876"
    providers.reset()
    provider = providers.provider_for("pkcs11")

    with pytest.raises(ProviderUnavailable) as refused:
        provider.check(RING_KEY)

    assert TOKEN in str(refused.value) and "9876" not in str(refused.value)
    with pytest.raises(ProviderUnavailable, match="refused the PIN"):  # and is not tried again
        provider.wrap(crypto.new_key(), key_name=RING_KEY, context=CONTEXT)


def test_it_reports_a_missing_token_or_module_as_unavailable(hsm, settings):
    settings.JIT_PKCS11_TOKEN_LABEL = "no-such-token"
    providers.reset()
    with pytest.raises(ProviderUnavailable, match="no-such-token"):
        providers.provider_for("pkcs11").check(RING_KEY)

    settings.JIT_PKCS11_MODULE = ""
    providers.reset()
    with pytest.raises(ProviderUnavailable, match="JIT_PKCS11_MODULE"):
        providers.provider_for("pkcs11").check(RING_KEY)


def test_it_notices_a_key_removed_while_its_session_is_open(hsm):
    label = hsm.create_key(f"gone-{uuid.uuid4().hex[:8]}")
    provider = providers.provider_for("pkcs11")
    key = crypto.new_key()
    blob = provider.wrap(key, key_name=label, context=CONTEXT)
    assert provider.unwrap(blob, key_name=label, context=CONTEXT) == key

    hsm.destroy_key(label)

    with pytest.raises(ProviderUnavailable, match=label):
        provider.unwrap(blob, key_name=label, context=CONTEXT)
    with pytest.raises(ProviderUnavailable, match=label):
        provider.check(label)


def test_it_reopens_the_hsm_in_a_forked_child(hsm):
    provider = providers.provider_for("pkcs11")
    key = crypto.new_key()
    blob = provider.wrap(key, key_name=RING_KEY, context=CONTEXT)  # the parent's session is open
    read_end, write_end = os.pipe()

    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            os.write(write_end, provider.unwrap(blob, key_name=RING_KEY, context=CONTEXT))
        finally:
            os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    from_child = os.read(read_end, 64)
    os.close(read_end)

    assert from_child == key
    assert provider.unwrap(blob, key_name=RING_KEY, context=CONTEXT) == key  # the parent's session survived


# --- through the keys services -----------------------------------------------------------------------


@pytest.fixture
def svc_member(cast: dict[str, Any], security_group: SecurityGroup) -> Any:
    approval_services.standing_member_add(security_group, user=cast["svc"], acting_user=None)
    return cast["svc"]


def hsm_ring(security_group: SecurityGroup, label: str, name: str = "hsm-ring") -> Any:
    return services.keyring_create(
        name=name, security_group=security_group, provider="pkcs11", provider_key=label, acting_user=None
    )


def add_secret(keyring: Any, by: Any, name: str, value: str) -> Any:
    return services.secret_create(keyring=keyring, name=name, kind="generic", metadata={}, value=value, acting_user=by)


def reveal(secret: Any, user: Any) -> Any:
    return secret_reveal(secret.pk, acting_user=user, reason="test")


def test_it_keeps_a_secret_under_an_hsm_key(hsm, cast, security_group, svc_member):
    keyring = hsm_ring(security_group, RING_KEY)
    secret = add_secret(keyring, cast["secadmin"], "db-password", "hsm-guarded-value")

    version = KeyVersion.objects.get(keyring=keyring, version=1)
    assert version.root_ref == f"pkcs11:{TOKEN}/{RING_KEY}"
    assert len(bytes(version.wrapped_key)) == 60
    kek_cache_clear()  # the value comes back through the HSM, not from a KEK made in this process
    assert reveal(secret, svc_member).value == "hsm-guarded-value"


def test_it_keeps_old_values_readable_after_rotating_an_hsm_ring(hsm, cast, security_group, svc_member):
    keyring = hsm_ring(security_group, RING_KEY)
    old = add_secret(keyring, cast["secadmin"], "before", "value-under-v1")

    services.keyring_rotate(keyring, acting_user=None)
    new = add_secret(keyring, cast["secadmin"], "after", "value-under-v2")
    kek_cache_clear()

    assert (reveal(old, svc_member).value, reveal(old, svc_member).key_version) == ("value-under-v1", 1)
    assert (reveal(new, svc_member).value, reveal(new, svc_member).key_version) == ("value-under-v2", 2)


def test_it_stops_revealing_once_the_customer_destroys_the_hsm_key(hsm, cast, security_group, svc_member, settings):
    settings.JIT_KEK_CACHE_SECONDS = 0
    label = hsm.create_key(f"customer-{uuid.uuid4().hex[:8]}")
    guarded = add_secret(hsm_ring(security_group, label), cast["secadmin"], "guarded", "customer-held")
    local_ring = services.keyring_create(name="local-ring", security_group=security_group, acting_user=None)
    ordinary = add_secret(local_ring, cast["secadmin"], "ordinary", "service-held")
    assert reveal(guarded, svc_member).value == "customer-held"

    hsm.destroy_key(label)

    with pytest.raises(Unavailable) as refused:
        reveal(guarded, svc_member)
    assert (refused.value.status_code, refused.value.code) == (503, "key_provider_unavailable")
    failed = AuditEvent.objects.filter(action="secret.reveal_failed").get()
    assert (failed.target_id, failed.outcome, failed.data["error"]) == (
        str(guarded.pk),
        Outcome.FAILED,
        "provider_unavailable",
    )
    assert reveal(ordinary, svc_member).value == "service-held"
