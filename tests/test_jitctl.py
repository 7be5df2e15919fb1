"""jitctl against a live server: the command-line client run as a separate process, the way a
person or a script runs it, through a whole request and the refusals along the way.

Each person signs in once, in a home directory of their own: the token endpoint is throttled per
user and failed passwords count toward the lockout.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from approvals.models import AccessRequest, Grant, GrantState
from approvals.services import GRANT_CREDENTIAL_PREFIX
from jitaccess.accounts.models import ApiToken
from jitaccess.accounts.services import PERSONAL_TOKEN_PREFIX
from keys.services import keyring_create
from tests.conftest import submit
from tests.keys.conftest import make_secret

ROOT = Path(__file__).resolve().parent.parent
JUSTIFICATION = "Mailbox sync failing for tenant 42"
SECRET_VALUE = "cli-s3cret-Value-42"
REVEAL_REASON = "Compare the stored password for INC-7"


class Person:
    """One user's jitctl: their own HOME and config directory, so their own token file."""

    def __init__(self, username: str, home: Path, url: str) -> None:
        self.username = username
        self.home = home
        self.url = url
        home.mkdir()

    @property
    def token_file(self) -> Path:
        return self.home / "config" / "jitctl" / "tokens.json"

    def run(self, *args: str, stdin: str = "", env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        clean = {name: value for name, value in os.environ.items() if not name.startswith("JITCTL_")}
        clean.update({"HOME": str(self.home), "XDG_CONFIG_HOME": str(self.home / "config")}, **(env or {}))
        return subprocess.run(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "jitctl", "--url", self.url, *args],
            input=stdin,
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=clean,
            timeout=30,
        )

    def ok(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        done = self.run(*args, **kwargs)
        assert done.returncode == 0, f"jitctl {' '.join(args)} failed: {done.stderr}"
        return done

    def json(self, *args: str, **kwargs: Any) -> Any:
        return json.loads(self.ok("--json", *args, **kwargs).stdout)

    def login(self) -> str:
        done = self.ok("login", "--username", self.username, "--password-stdin", stdin=f"pw-{self.username}\n")
        assert f"as {self.username}" in done.stdout
        token = json.loads(self.token_file.read_text())[self.url]["token"]
        assert token.startswith(PERSONAL_TOKEN_PREFIX)
        assert token not in done.stdout + done.stderr
        return token


@pytest.fixture
def people(live_server: Any, tmp_path: Path) -> Any:
    return lambda username: Person(username, tmp_path / username, live_server.url)


def test_it_drives_a_request_from_submission_to_a_revealed_secret(
    cast: dict[str, Any], entitlement: Any, people: Any
) -> None:
    keyring = keyring_create(name="ring-cli", security_group=entitlement.security_group, acting_user=None)
    secret = make_secret(keyring, cast["secadmin"], name="mail-cli", value=SECRET_VALUE)
    requester, legal1a, legal2 = people("requester"), people("legal1a"), people("legal2")

    token = requester.login()
    assert stat.S_IMODE(requester.token_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(requester.token_file.parent.stat().st_mode) == 0o700

    assert "dkm-test" in [item["slug"] for item in requester.json("entitlements")]
    created = requester.json(
        "request", "dkm-test", "--purpose", "debugging", "--justification", JUSTIFICATION,
        "--ticket", "INC-7", "--duration", "1h30m",
    )  # fmt: skip
    assert (created["state"], created["duration_seconds"], created["requester"]) == ("pending", 5400, "requester")
    request_id = str(created["id"])
    shown = requester.ok("status", request_id).stdout
    assert "stage 1/2 open" in shown and JUSTIFICATION in shown
    assert [item["id"] for item in requester.json("status")] == [created["id"]]

    legal1a.login()
    assert [item["id"] for item in legal1a.json("inbox")] == [created["id"]]
    first = legal1a.ok("approve", request_id, "--comment", "Ticket checked", "--yes")
    digest = AccessRequest.objects.get(pk=created["id"]).digest
    assert f"signing the request digest {digest}" in first.stderr
    assert "Approved stage 1" in first.stdout and "stage 2/2 open" in first.stdout
    assert legal1a.json("inbox") == []

    legal2.login()
    decided = legal2.json("approve", request_id, "--comment", "Signed off", "--yes")
    assert decided["state"] == "approved"
    assert [(s["state"], s["decisions"][0]["approver"]) for s in decided["stages"]] == [
        ("approved", "legal1a"),
        ("approved", "legal2"),
    ]
    grant_id = str(decided["grant"]["id"])
    assert "2/2 approved" in requester.ok("status", request_id).stdout

    assert [item["id"] for item in requester.json("grants", "--state", "active")] == [int(grant_id)]
    minted = requester.ok("credential", grant_id)
    credential = minted.stdout.removesuffix("\n")
    assert credential.startswith(GRANT_CREDENTIAL_PREFIX) and "\n" not in credential  # alone on stdout
    assert credential not in minted.stderr and "shown this once" in minted.stderr
    assert [item["name"] for item in requester.json("secrets", "--keyring", "ring-cli")] == ["mail-cli"]

    revealed = requester.ok("reveal", str(secret.pk), "--reason", REVEAL_REASON, env={"JITCTL_CREDENTIAL": credential})
    assert revealed.stdout == SECRET_VALUE + "\n"
    assert SECRET_VALUE not in revealed.stderr and f"under grant #{grant_id}" in revealed.stderr
    from_stdin = requester.ok(
        "reveal", str(secret.pk), "--reason", REVEAL_REASON, "--credential", "-", stdin=credential
    )
    assert from_stdin.stdout == SECRET_VALUE + "\n"

    forged = requester.run("reveal", str(secret.pk), "--reason", REVEAL_REASON, "--credential", "jitg_forged")
    assert forged.returncode == 1 and forged.stdout == ""
    assert "jitctl: Invalid, expired or revoked credential. (HTTP 401)" in forged.stderr

    ended = requester.ok("revoke", grant_id, "--reason", "Done with INC-7")
    assert f"Grant #{grant_id} is revoked" in ended.stdout
    assert Grant.objects.get(pk=grant_id).state == GrantState.REVOKED
    after = requester.run("reveal", str(secret.pk), "--reason", REVEAL_REASON, env={"JITCTL_CREDENTIAL": credential})
    assert after.returncode == 1 and "(HTTP 401)" in after.stderr and SECRET_VALUE not in after.stdout

    assert "Token revoked" in requester.ok("logout").stdout
    assert not requester.token_file.exists()
    assert ApiToken.objects.get(user=cast["requester"]).revoked_at is not None
    refused = requester.run("status", env={"JITCTL_TOKEN": token})
    assert refused.returncode == 1 and "(HTTP 401)" in refused.stderr


def test_it_prints_the_apis_refusals_and_exits_1(cast: dict[str, Any], entitlement: Any, people: Any) -> None:
    outsider = people("outsider")
    wrong = outsider.run("login", "-u", "outsider", "--password-stdin", stdin="not-the-password\n")
    assert wrong.returncode == 1 and wrong.stdout == ""
    assert "jitctl: Invalid username, password or one-time code (otp). (HTTP 401)" in wrong.stderr
    assert not outsider.token_file.exists()

    pending = submit(cast["requester"], entitlement)
    legal1a = people("legal1a")
    legal1a.login()
    denied = legal1a.run("deny", str(pending.pk), "--yes")
    assert denied.returncode == 1
    assert denied.stderr.splitlines()[-1] == "jitctl: comment: A comment is required to deny a request. (HTTP 400)"
    pending.refresh_from_db()
    assert pending.decisions.count() == 0

    # Without --yes and without a terminal to ask at, nothing is sent.
    unconfirmed = legal1a.run("approve", str(pending.pk))
    assert unconfirmed.returncode == 2 and "pass --yes" in unconfirmed.stderr
    assert pending.decisions.count() == 0

    own = people("requester")
    own.login()
    refused = own.run("approve", str(pending.pk), "--yes")
    assert refused.returncode == 1 and "(HTTP 403)" in refused.stderr
    missing = own.run("status", "999999")
    assert missing.returncode == 1 and "(HTTP 404)" in missing.stderr


def test_it_exits_2_on_usage_errors(tmp_path: Path) -> None:
    person = Person("nobody", tmp_path / "nobody", "http://127.0.0.1:9")
    no_purpose = person.run("request", "dkm-test", "--justification", "x")
    assert no_purpose.returncode == 2 and "the following arguments are required: --purpose" in no_purpose.stderr
    assert person.run("approve", "not-a-number", "--yes").returncode == 2
    week = person.run("request", "dkm-test", "--purpose", "debugging", "--justification", "y", "--duration", "1 week")
    assert week.returncode == 2 and "not a duration: '1 week'" in week.stderr
    remote = person.run("--url", "http://jit.example.test", "entitlements")
    assert remote.returncode == 2 and "Refusing plain http://" in remote.stderr

    wrapper = subprocess.run([ROOT / "bin" / "jitctl", "--version"], capture_output=True, text=True, timeout=30)  # noqa: S603
    assert wrapper.returncode == 0 and wrapper.stdout.startswith("jitctl ")


def test_it_refuses_a_token_file_others_can_read(tmp_path: Path) -> None:
    person = Person("nobody", tmp_path / "nobody", "http://127.0.0.1:9")
    person.token_file.parent.mkdir(parents=True)
    person.token_file.write_text(json.dumps({person.url: {"token": "jit_leaked"}}))
    person.token_file.chmod(0o644)
    refused = person.run("status")
    assert refused.returncode == 1 and "open to other users (mode 0644)" in refused.stderr
    assert "jit_leaked" not in refused.stderr

    unreachable = person.run("--url", "http://127.0.0.1:9", "entitlements", env={"JITCTL_TOKEN": "jit_x"})
    assert unreachable.returncode == 1 and "Cannot reach http://127.0.0.1:9" in unreachable.stderr


def test_it_does_not_follow_a_redirect_with_the_token(tmp_path: Path) -> None:
    seen: list[tuple[str, str | None]] = []

    class Redirecting(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append((self.path, self.headers.get("Authorization")))
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.1:{self.server.server_port}/elsewhere/")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Redirecting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        person = Person("nobody", tmp_path / "nobody", f"http://127.0.0.1:{server.server_port}")
        moved = person.run("entitlements", env={"JITCTL_TOKEN": "jit_not-to-be-forwarded"})
    finally:
        server.shutdown()
        server.server_close()
    assert moved.returncode == 1 and "answered with a redirect" in moved.stderr
    assert [path for path, _ in seen] == ["/api/v1/entitlements/"]
