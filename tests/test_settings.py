"""Configuration comes from the environment, strictly, and fails closed."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from jitaccess.env import env_bool, env_int, env_secret
from jitaccess.settings import DEV_AUDIT_SIGNING_KEY, DEV_ROOT_KEY

ROOT = Path(__file__).resolve().parent.parent


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "JIT_", "DATABASE_", "REDIS_"))}
    clean.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60
    )


def test_production_without_a_secret_key_stops_with_one_line(tmp_path):
    result = manage("check", DJANGO_DEBUG="false", JIT_VAR_DIR=str(tmp_path))
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [
        "configuration error: DJANGO_SECRET_KEY (or DJANGO_SECRET_KEY_FILE) must be set when DJANGO_DEBUG is off"
    ]


ROOT_KEY = base64.b64encode(bytes(range(32))).decode()
SIGNING_KEY = base64.b64encode(bytes(range(32, 64))).decode()


def test_production_runs_with_its_secrets_from_files(tmp_path):
    secret = tmp_path / "secret_key"
    secret.write_text("a-long-random-production-secret-key-value-0123456789\n")
    root_key = tmp_path / "root_key"
    root_key.write_text(ROOT_KEY + "\n")
    signing_key = tmp_path / "signing_key"
    signing_key.write_text(SIGNING_KEY + "\n")
    result = manage(
        "check",
        DJANGO_DEBUG="false",
        DJANGO_SECRET_KEY_FILE=str(secret),
        JIT_ROOT_KEY_FILE=str(root_key),
        JIT_AUDIT_SIGNING_KEY_FILE=str(signing_key),
        JIT_VAR_DIR=str(tmp_path),
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "root_key, message",
    [
        (None, "JIT_ROOT_KEY (or JIT_ROOT_KEY_FILE) must be set when DJANGO_DEBUG is off"),
        (DEV_ROOT_KEY, "JIT_ROOT_KEY is the published development key; generate a real one"),
        (base64.b64encode(b"short").decode(), "JIT_ROOT_KEY must decode to 32 bytes, not 5"),
        ("not base64 at all!", "JIT_ROOT_KEY must be base64"),
    ],
)
def test_production_refuses_a_missing_weak_or_malformed_root_key_in_one_line(tmp_path, root_key, message):
    env = {"DJANGO_DEBUG": "false", "DJANGO_SECRET_KEY": "x" * 50, "JIT_VAR_DIR": str(tmp_path)}
    if root_key is not None:
        env["JIT_ROOT_KEY"] = root_key
    result = manage("check", **env)
    assert result.returncode != 0
    assert [line for line in result.stderr.splitlines() if line.strip()] == [f"configuration error: {message}"]


@pytest.mark.parametrize(
    "signing_key, message",
    [
        (None, "JIT_AUDIT_SIGNING_KEY (or JIT_AUDIT_SIGNING_KEY_FILE) must be set when DJANGO_DEBUG is off"),
        (DEV_AUDIT_SIGNING_KEY, "JIT_AUDIT_SIGNING_KEY is the published development key; generate a real one"),
        (base64.b64encode(b"short").decode(), "JIT_AUDIT_SIGNING_KEY must decode to 32 bytes, not 5"),
        (ROOT_KEY, "JIT_AUDIT_SIGNING_KEY must not be the root key; generate a separate one"),
    ],
)
def test_production_refuses_a_missing_weak_or_shared_signing_key_in_one_line(tmp_path, signing_key, message):
    env = {
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": "x" * 50,
        "JIT_ROOT_KEY": ROOT_KEY,
        "JIT_VAR_DIR": str(tmp_path),
    }
    if signing_key is not None:
        env["JIT_AUDIT_SIGNING_KEY"] = signing_key
    result = manage("check", **env)
    assert result.returncode != 0
    assert [line for line in result.stderr.splitlines() if line.strip()] == [f"configuration error: {message}"]


def test_seed_demo_outside_debug_needs_an_explicit_password(tmp_path):
    env = {
        "DJANGO_DEBUG": "false",
        # migrate runs the system checks, which refuse a repetitive key (tests/test_deploy_checks.py).
        "DJANGO_SECRET_KEY": "a-long-random-production-secret-key-value-0123456789",
        "JIT_ROOT_KEY": ROOT_KEY,
        "JIT_AUDIT_SIGNING_KEY": SIGNING_KEY,
        "JIT_VAR_DIR": str(tmp_path),
    }
    assert manage("migrate", "-v0", **env).returncode == 0
    refused = manage("seed_demo", **env)
    assert refused.returncode != 0 and "JIT_DEMO_PASSWORD" in refused.stderr
    assert manage("seed_demo", JIT_DEMO_PASSWORD="a-demo-password", **env).returncode == 0


def test_env_helpers_are_strict(monkeypatch, tmp_path):
    monkeypatch.setenv("X_BOOL", "maybe")
    with pytest.raises(ImproperlyConfigured, match="X_BOOL"):
        env_bool("X_BOOL")
    monkeypatch.setenv("X_INT", "ten")
    with pytest.raises(ImproperlyConfigured, match="X_INT"):
        env_int("X_INT", 1)
    monkeypatch.setenv("X_INT", "0")
    with pytest.raises(ImproperlyConfigured, match="at least 1"):
        env_int("X_INT", 1, minimum=1)
    monkeypatch.setenv("X_SECRET", "direct")
    monkeypatch.setenv("X_SECRET_FILE", str(tmp_path / "f"))
    with pytest.raises(ImproperlyConfigured, match="only one"):
        env_secret("X_SECRET", dev_default=None, debug=False)
    monkeypatch.delenv("X_SECRET")
    with pytest.raises(ImproperlyConfigured, match="cannot read"):
        env_secret("X_SECRET", dev_default=None, debug=False)
    monkeypatch.delenv("X_SECRET_FILE")
    assert env_secret("X_SECRET", dev_default="dev", debug=True) == "dev"
    with pytest.raises(ImproperlyConfigured):
        env_secret("X_SECRET", dev_default="dev", debug=False)
    # Without a development default the secret is required in DEBUG too, and the line says so.
    with pytest.raises(ImproperlyConfigured, match=r"^X_SECRET \(or X_SECRET_FILE\) must be set$"):
        env_secret("X_SECRET", dev_default=None, debug=True)


def test_every_setting_is_documented_in_env_example():
    settings_text = (ROOT / "jitaccess/settings.py").read_text()
    used = set(re.findall(r'\benv_[a-z_]+\(\s*"([A-Z_]+)"', settings_text))
    documented = set(re.findall(r"^([A-Z_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert used and used <= documented, used - documented


def test_celery_is_configured_for_reliable_expiry(settings):
    from jitaccess.celery import app

    assert app.conf.task_acks_late is True
    assert app.conf.task_reject_on_worker_lost is True
    assert app.conf.worker_prefetch_multiplier == 1
    assert app.conf.enable_utc is True
    # Expiry ETAs never exceed the horizon, which stays far inside Redis's visibility timeout.
    assert settings.JIT_EXPIRY_HORIZON_SECONDS * 10 < app.conf.broker_transport_options["visibility_timeout"]
