"""Production settings pass `manage.py check --deploy`; weak keys and a clashing admin path stop start-up."""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from jitaccess import checks

ROOT = Path(__file__).resolve().parent.parent


def production_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    """A production-like environment: DEBUG off, random keys, behind a TLS-terminating proxy."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "JIT_", "DATABASE_", "REDIS_"))}
    env.update(
        DJANGO_DEBUG="false",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(64),
        DJANGO_ALLOWED_HOSTS="jitaccess.example.com",
        DJANGO_CSRF_TRUSTED_ORIGINS="https://jitaccess.example.com",
        JIT_PUBLIC_URL="https://jitaccess.example.com",
        JIT_BEHIND_TLS_PROXY="true",
        JIT_ROOT_KEY=base64.b64encode(secrets.token_bytes(32)).decode(),
        JIT_AUDIT_SIGNING_KEY=base64.b64encode(secrets.token_bytes(32)).decode(),
        JIT_VAR_DIR=str(tmp_path),
    )
    env.update(overrides)
    return env


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    result = manage(production_env(tmp_path), "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
    assert "WARNING" not in result.stderr.upper()


def test_weak_keys_stop_start_up_with_one_line_each(tmp_path):
    env = production_env(
        tmp_path,
        DJANGO_SECRET_KEY="x" * 60,
        JIT_ROOT_KEY=base64.b64encode(bytes(32)).decode(),
        JIT_AUDIT_SIGNING_KEY=base64.b64encode(b"\x01\x02" * 16).decode(),
    )
    result = manage(env, "check")
    assert result.returncode != 0
    problems = [line for line in result.stderr.splitlines() if line.startswith("?: (jitaccess.")]
    assert problems == [
        "?: (jitaccess.E001) DJANGO_SECRET_KEY uses fewer than 5 different characters; generate a long random one",
        "?: (jitaccess.E002) JIT_ROOT_KEY has fewer than 8 different bytes (a repeated pattern, not a random key); "
        "generate 32 random bytes",
        "?: (jitaccess.E003) JIT_AUDIT_SIGNING_KEY has fewer than 8 different bytes (a repeated pattern, not a "
        "random key); generate 32 random bytes",
    ]


def test_a_malformed_admin_path_stops_start_up_in_one_line(tmp_path):
    result = manage(production_env(tmp_path, JIT_ADMIN_PATH="/admin"), "check")
    assert result.returncode != 0
    assert [line for line in result.stderr.splitlines() if line.strip()] == [
        "configuration error: JIT_ADMIN_PATH must be a relative path ending in '/' such as 'admin/' or "
        "'ops/admin/', not '/admin'"
    ]


def test_the_admin_moves_to_its_configured_path_and_may_not_shadow_a_page(tmp_path):
    moved = manage(
        production_env(tmp_path, JIT_ADMIN_PATH="ops-7f3a/console/"),
        "shell",
        "--no-imports",
        "-c",
        "from django.urls import reverse; print(reverse('admin:index'), reverse('admin:login'))",
    )
    assert moved.returncode == 0, moved.stderr
    assert moved.stdout.split() == ["/ops-7f3a/console/", "/ops-7f3a/console/login/"]
    clash = manage(production_env(tmp_path, JIT_ADMIN_PATH="audit/admin/"), "check")
    assert clash.returncode != 0
    assert (
        "?: (jitaccess.E010) JIT_ADMIN_PATH 'audit/admin/' starts with 'audit/', which the application's own "
        "pages use; choose another prefix"
    ) in clash.stderr.splitlines()


# --- the checks themselves, in process ------------------------------------------------------------


def ids(errors: list) -> list[str]:
    return [error.id for error in errors]


def test_the_test_settings_pass_the_key_checks(settings):
    assert checks.check_keys(None) == []
    assert checks.check_admin_path(None) == []


@pytest.mark.parametrize(
    "secret_key, problem",
    [
        ("dev-only-insecure-secret-key-never-use-in-production", "is a published development value"),
        ("django-insecure-" + secrets.token_urlsafe(50), "is a published development value"),
        ("short-but-varied-0123456789", "is 27 characters long; use at least 50"),
        ("abcd" * 20, "uses fewer than 5 different characters"),
    ],
)
def test_a_weak_secret_key_is_refused_outside_debug(settings, secret_key, problem):
    settings.SECRET_KEY = secret_key
    errors = checks.check_keys(None)
    assert ids(errors) == ["jitaccess.E001"]
    assert errors[0].msg == f"DJANGO_SECRET_KEY {problem}; generate a long random one"
    settings.DEBUG = True
    assert checks.check_keys(None) == []


def test_the_development_keys_given_explicitly_are_refused_outside_debug(settings):
    settings.JIT_ROOT_KEY = base64.b64decode(settings.DEV_ROOT_KEY)
    settings.JIT_AUDIT_SIGNING_KEY = base64.b64decode(settings.DEV_AUDIT_SIGNING_KEY)
    errors = checks.check_keys(None)
    assert ids(errors) == ["jitaccess.E002", "jitaccess.E003"]
    assert errors[0].msg == "JIT_ROOT_KEY is the published development key; generate 32 random bytes"


def test_a_random_key_passes_and_a_repeated_pattern_does_not(settings):
    settings.JIT_ROOT_KEY = secrets.token_bytes(32)
    assert checks.check_keys(None) == []
    settings.JIT_ROOT_KEY = b"abcdefg" * 4 + b"abcd"
    assert ids(checks.check_keys(None)) == ["jitaccess.E002"]


# --- the headers every page is sent with ----------------------------------------------------------

POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "object-src": "'none'",
    "base-uri": "'none'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}


def policy(response) -> dict[str, str]:
    directives = (part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";"))
    return {name: value for name, value in directives}


def test_pages_are_sent_the_strict_policy_and_the_other_hardening_headers(client, db):
    response = client.get("/login/")
    assert policy(response) == POLICY
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_only_the_api_docs_may_use_inline_styles_and_never_inline_scripts(client, db):
    swagger = client.get("/api/v1/docs/")
    assert policy(swagger) == {**POLICY, "style-src": "'self' 'unsafe-inline'"}
    assert b"<script>" not in swagger.content  # every script has a src on the site


# An inline <script>, an event-handler attribute, a <style> block or a style attribute.
INLINE_MARKERS = ("<script>", " onclick=", " onload=", " onsubmit=", " onchange=", "<style", " style=")


def test_our_page_templates_have_no_inline_script_or_style():
    # Mail templates are not pages: mail clients need inline styles and no CSP applies.
    pages = [path for path in (ROOT / "templates").rglob("*.html") if "email" not in path.parts]
    offenders = [
        str(path.relative_to(ROOT)) for path in pages if any(marker in path.read_text() for marker in INLINE_MARKERS)
    ]
    assert offenders == []


def test_the_server_error_page_uses_the_stylesheet():
    from django.template.loader import render_to_string

    page = render_to_string("500.html")
    assert "<style" not in page and "css/app.css" in page


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-c", "import jitaccess.wsgi"],  # what gunicorn loads
        [sys.executable, "-m", "celery", "-A", "jitaccess", "worker", "--pool=solo", "-l", "error"],
        [sys.executable, "-m", "celery", "-A", "jitaccess", "beat", "-l", "error", "--schedule", "SCHEDULE"],
    ],
    ids=["gunicorn", "worker", "beat"],
)
def test_processes_that_run_no_checks_still_refuse_a_weak_key(tmp_path, command):
    env = production_env(tmp_path, JIT_ROOT_KEY=base64.b64encode(bytes(32)).decode())
    env["REDIS_URL"] = "redis://127.0.0.1:6379/9"
    # Beat's schedule file in the test's folder: beat replaces a schedule file it cannot open.
    command = [str(tmp_path / "beat-schedule") if part == "SCHEDULE" else part for part in command]

    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)

    assert result.returncode != 0
    assert "JIT_ROOT_KEY has fewer than 8 different bytes" in result.stderr, result.stderr[-2000:]
