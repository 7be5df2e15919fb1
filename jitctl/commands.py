"""One function per jitctl command: ask the API, render the answer (JSON with --json).

Tokens, credentials and secret values are written only where a command exists to print them
(``credential``, ``reveal``), to stdout and nothing else beside them there.
"""

from __future__ import annotations

import getpass
import json
import os
from dataclasses import dataclass
from typing import Any, TextIO

from jitctl import output
from jitctl.client import ApiClient, ApiError
from jitctl.store import TOKEN_ENV, token_forget, token_load, token_save

CREDENTIAL_ENV = "JITCTL_CREDENTIAL"


class Refusal(Exception):
    """Nothing to do or not possible: exit 1 with this message."""


class UsageProblem(Exception):
    """The command line cannot be carried out as given: exit 2 with this message."""


@dataclass
class Context:
    server: str
    as_json: bool
    assume_yes: bool
    out: TextIO
    err: TextIO
    stdin: TextIO

    def client(self) -> ApiClient:
        """A client signed in with the personal token for this server."""
        saved = token_load(self.server)
        if saved is None:
            raise Refusal(f"Not signed in to {self.server}: run `jitctl login` (or set {TOKEN_ENV}).")
        return ApiClient(self.server, saved.token)

    def emit(self, data: Any) -> None:
        self.out.write(json.dumps(data, indent=2, sort_keys=True) + "\n")

    def note(self, text: str) -> None:
        self.err.write(text + "\n")

    def confirm(self, question: str) -> None:
        if self.assume_yes:
            return
        if not self.stdin.isatty():
            raise UsageProblem("Nothing was sent: there is no terminal to confirm at; pass --yes to go ahead.")
        self.err.write(f"{question} [y/N] ")
        self.err.flush()
        if self.stdin.readline().strip().lower() not in ("y", "yes"):
            raise Refusal("Cancelled; nothing was sent.")


# --- signing in and out ---------------------------------------------------------------------------


def login(ctx: Context, args: Any) -> None:
    username = args.username
    if not username:
        if not ctx.stdin.isatty():
            raise UsageProblem("Give --username when not at a terminal.")
        ctx.err.write("Username: ")
        ctx.err.flush()
        username = ctx.stdin.readline().strip()
    if args.password_stdin:
        password = ctx.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ", stream=ctx.err)
    if not username or not password:
        raise UsageProblem("A username and a password are needed to sign in.")
    body = {"username": username, "password": password}
    if args.otp:
        body["otp"] = args.otp
    answer = ApiClient(ctx.server).post("auth/token/", body)
    path = token_save(ctx.server, token=answer["token"], username=username, expires_at=answer["expires_at"])
    if os.environ.get(TOKEN_ENV):
        ctx.note(f"Note: {TOKEN_ENV} is set and is used in place of the token just saved.")
    if ctx.as_json:
        ctx.emit(
            {"server": ctx.server, "username": username, "expires_at": answer["expires_at"], "token_file": str(path)}
        )
    else:
        ctx.out.write(f"Signed in to {ctx.server} as {username}; the token expires at {answer['expires_at']}.\n")
        ctx.out.write(f"Token kept in {path} (readable by you only).\n")


def logout(ctx: Context, args: Any) -> None:
    saved = token_load(ctx.server)
    if saved is None:
        raise Refusal(f"Not signed in to {ctx.server}.")
    try:
        ApiClient(ctx.server, saved.token).delete("auth/token/current/")
        revoked = True
    except ApiError as refused:
        if refused.status != 401:
            raise
        revoked = False  # expired or revoked already: nothing left to revoke on the server
    forgotten = saved.source != TOKEN_ENV and token_forget(ctx.server)
    if ctx.as_json:
        ctx.emit({"server": ctx.server, "revoked": revoked, "removed_from_file": forgotten})
        return
    ctx.out.write("Token revoked.\n" if revoked else "The token was no longer valid on the server.\n")
    if forgotten:
        ctx.out.write(f"Removed it from {saved.source}.\n")
    elif saved.source == TOKEN_ENV:
        ctx.out.write(f"Unset {TOKEN_ENV}: it holds the revoked token.\n")


# --- entitlements and requests --------------------------------------------------------------------


def entitlements(ctx: Context, args: Any) -> None:
    found = ctx.client().get_all("entitlements/")
    if ctx.as_json:
        ctx.emit(found)
        return
    rows = [
        (
            item.get("slug"),
            item.get("name"),
            item.get("security_group"),
            output.duration_text(item.get("default_duration_seconds")),
            output.duration_text(item.get("max_duration_seconds")),
            "yes" if item.get("requires_ticket") else "no",
            " > ".join(stage.get("approver_group", "?") for stage in item.get("stages") or []),
        )
        for item in found
    ]
    headers = ("SLUG", "NAME", "GROUP", "DEFAULT", "MAX", "TICKET", "APPROVERS")
    output.table(ctx.out, headers, rows, empty="No entitlement you may request.")


def request(ctx: Context, args: Any) -> None:
    body: dict[str, Any] = {
        "entitlement": args.entitlement,
        "purpose": args.purpose,
        "justification": args.justification,
    }
    if args.ticket is not None:
        body["ticket"] = args.ticket
    if args.duration is not None:
        body["duration_seconds"] = args.duration
    created = ctx.client().post("requests/", body)
    if ctx.as_json:
        ctx.emit(created)
        return
    ctx.out.write(
        f"Request #{created['id']} for {created['entitlement']} submitted: {created['state']}, "
        f"{output.stage_progress(created)}.\n"
    )


def _request_rows(found: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (
            f"#{item.get('id')}",
            item.get("requester"),
            item.get("entitlement"),
            item.get("state"),
            output.stage_progress(item),
            item.get("purpose"),
            item.get("ticket"),
            output.duration_text(item.get("duration_seconds")),
            item.get("created_at"),
        )
        for item in found
    ]


REQUEST_HEADERS = ("ID", "REQUESTER", "ENTITLEMENT", "STATE", "PROGRESS", "PURPOSE", "TICKET", "DURATION", "CREATED")


def status(ctx: Context, args: Any) -> None:
    client = ctx.client()
    if args.request_id is not None:
        found = client.get(f"requests/{args.request_id}/")
        if ctx.as_json:
            ctx.emit(found)
        else:
            output.request_detail(ctx.out, found)
        return
    listed = client.get_all("requests/", state=args.state, entitlement=args.entitlement)
    if ctx.as_json:
        ctx.emit(listed)
        return
    output.table(ctx.out, REQUEST_HEADERS, _request_rows(listed), empty="No requests.")


def inbox(ctx: Context, args: Any) -> None:
    listed = ctx.client().get_all("requests/", awaiting="me")
    if ctx.as_json:
        ctx.emit(listed)
        return
    output.table(ctx.out, REQUEST_HEADERS, _request_rows(listed), empty="Nothing awaits your decision.")


def decide(ctx: Context, args: Any) -> None:
    """Approve or deny the open stage, naming the stage and digest that were shown: should the
    request move on meanwhile, the server answers 409 and records nothing."""
    verb = args.command  # "approve" or "deny"
    client = ctx.client()
    target = client.get(f"requests/{args.request_id}/")
    open_stage = next((stage for stage in target.get("stages") or [] if stage.get("state") == "open"), None)
    if target.get("state") != "pending" or open_stage is None:
        raise Refusal(f"Request #{target.get('id')} is {target.get('state')}: there is no open stage to decide.")
    output.request_detail(ctx.err, target)
    ctx.err.write(
        f"\nYou are about to {verb.upper()} stage {open_stage['order']} ({open_stage['name']}) of request "
        f"#{target['id']},\nsigning the request digest {target['digest']}.\n"
    )
    ctx.confirm(f"{verb.capitalize()} request #{target['id']}?")
    body = {"comment": args.comment or "", "stage": open_stage["order"], "digest": target["digest"]}
    decided = client.post(f"requests/{target['id']}/{verb}/", body)
    if ctx.as_json:
        ctx.emit(decided)
        return
    done = "Approved" if verb == "approve" else "Denied"
    ctx.out.write(
        f"{done} stage {open_stage['order']} of request #{decided['id']}: the request is {decided['state']}, "
        f"{output.stage_progress(decided)}.\n"
    )
    if decided.get("grant"):
        ctx.out.write(f"Grant #{decided['grant']['id']} is {decided['grant']['state']}.\n")


def withdraw(ctx: Context, args: Any) -> None:
    withdrawn = ctx.client().post(f"requests/{args.request_id}/withdraw/")
    if ctx.as_json:
        ctx.emit(withdrawn)
        return
    ctx.out.write(f"Request #{withdrawn['id']} is {withdrawn['state']}.\n")


# --- grants, credentials and secrets ------------------------------------------------------------


def grants(ctx: Context, args: Any) -> None:
    listed = ctx.client().get_all("grants/", state=args.state)
    if ctx.as_json:
        ctx.emit(listed)
        return
    rows = [
        (
            f"#{item.get('id')}",
            f"#{item.get('request')}",
            item.get("user"),
            item.get("entitlement"),
            item.get("security_group"),
            item.get("state"),
            item.get("starts_at"),
            item.get("expires_at"),
            "yes" if item.get("credential_minted") else "no",
        )
        for item in listed
    ]
    headers = ("ID", "REQUEST", "USER", "ENTITLEMENT", "GROUP", "STATE", "STARTS", "EXPIRES", "CREDENTIAL")
    output.table(ctx.out, headers, rows, empty="No grants.")


def credential(ctx: Context, args: Any) -> None:
    minted = ctx.client().post(f"grants/{args.grant_id}/credential/")
    # stdout carries the credential alone, so `CRED=$(jitctl credential 7)` captures exactly it.
    if ctx.as_json:
        ctx.emit(minted)
    else:
        ctx.out.write(minted["credential"] + "\n")
    ctx.note(
        f"Credential for grant #{args.grant_id}, valid until {minted['expires_at']}. "
        "It is shown this once; keep it out of shell history and files."
    )


def revoke(ctx: Context, args: Any) -> None:
    ended = ctx.client().post(f"grants/{args.grant_id}/revoke/", {"reason": args.reason or ""})
    if ctx.as_json:
        ctx.emit(ended)
        return
    ctx.out.write(f"Grant #{ended['id']} is {ended['state']} (ended at {ended.get('ended_at')}).\n")


def secrets(ctx: Context, args: Any) -> None:
    listed = ctx.client().get_all("secrets/", keyring=args.keyring, kind=args.kind)
    if ctx.as_json:
        ctx.emit(listed)
        return
    rows = [
        (
            item.get("id"),
            item.get("name"),
            item.get("keyring"),
            item.get("kind"),
            item.get("key_version"),
            item.get("updated_at"),
        )
        for item in listed
    ]
    headers = ("ID", "NAME", "KEYRING", "KIND", "KEY VERSION", "UPDATED")
    output.table(ctx.out, headers, rows, empty="No secrets you can see.")


def reveal(ctx: Context, args: Any) -> None:
    bearer = args.credential
    if bearer == "-":
        bearer = ctx.stdin.readline().strip()
        if not bearer:
            raise UsageProblem("--credential - reads the credential from stdin, which was empty.")
    bearer = bearer or os.environ.get(CREDENTIAL_ENV, "").strip()
    client = ApiClient(ctx.server, bearer) if bearer else ctx.client()
    revealed = client.post(f"secrets/{args.secret_id}/reveal/", {"reason": args.reason})
    if ctx.as_json:
        ctx.emit(revealed)
    else:
        ctx.out.write(str(revealed["value"]) + "\n")
    under = f" under grant #{revealed['grant']}" if revealed.get("grant") else ""
    ctx.note(f"Revealed secret {args.secret_id} (key version {revealed.get('key_version')}){under}; this was audited.")
