"""The command line: arguments, the command they name, and exit codes.

Exit codes: 0 done; 1 refused by the server, unreachable, or not possible; 2 a usage error.
Errors go to stderr as ``jitctl: <the API's detail>`` with one line per field error.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from jitctl import __version__, commands
from jitctl.client import ApiError, Unreachable, UnsafeUrl, base_url_check, iter_field_errors
from jitctl.output import duration_parse
from jitctl.store import StoreProblem

DEFAULT_URL = "http://127.0.0.1:8000"
URL_ENV = "JITCTL_URL"
PURPOSES = ("debugging", "troubleshooting", "auditing")
EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2


def _duration(text: str) -> int:
    try:
        return duration_parse(text)
    except ValueError as problem:
        raise argparse.ArgumentTypeError(str(problem)) from None


def _positive_id(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"not an id: {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jitctl",
        description="Just-in-time access from the command line: request, approve, mint, reveal.",
        epilog="Environment: JITCTL_URL, JITCTL_TOKEN, JITCTL_CREDENTIAL. See docs/JITCTL.md.",
    )
    parser.add_argument("--url", help=f"the server (default: ${URL_ENV}, else {DEFAULT_URL})")
    parser.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")
    parser.add_argument(
        "--insecure-http", action="store_true", help="allow plain http:// to a host other than this machine"
    )
    parser.add_argument("--version", action="version", version=f"jitctl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Callable[..., None], help_text: str) -> argparse.ArgumentParser:
        found = sub.add_parser(name, help=help_text, description=help_text)
        found.set_defaults(handler=handler)
        return found

    login = command("login", commands.login, "sign in and keep a personal token (password asked for)")
    login.add_argument("-u", "--username")
    login.add_argument("--otp", help="the authenticator app's current code, when your account has one")
    login.add_argument("--password-stdin", action="store_true", help="read the password from stdin's first line")

    command("logout", commands.logout, "revoke the personal token and forget it")
    command("entitlements", commands.entitlements, "list what you may request")

    ask = command("request", commands.request, "ask for access to an entitlement")
    ask.add_argument("entitlement", help="the entitlement's slug")
    ask.add_argument("--purpose", required=True, choices=PURPOSES)
    ask.add_argument("--justification", required=True, help="why you need it, for the approvers")
    ask.add_argument("--ticket", help="the incident or change ticket")
    ask.add_argument("--duration", type=_duration, help="how long: 3600, 90m, 1h30m (default: the entitlement's)")

    status = command("status", commands.status, "one request in detail, or a list of yours")
    status.add_argument("request_id", nargs="?", type=_positive_id)
    status.add_argument("--state", choices=("pending", "approved", "denied", "withdrawn", "expired"))
    status.add_argument("--entitlement", help="only this entitlement's requests")

    command("inbox", commands.inbox, "requests awaiting your decision")
    for verb, help_text in (("approve", "approve a request's open stage"), ("deny", "deny a request")):
        decide = command(verb, commands.decide, help_text)
        decide.add_argument("request_id", type=_positive_id)
        decide.add_argument("--comment", help="for the record (required to deny)")
        decide.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")

    withdraw = command("withdraw", commands.withdraw, "withdraw one of your pending requests")
    withdraw.add_argument("request_id", type=_positive_id)

    grants = command("grants", commands.grants, "list your grants")
    grants.add_argument("--state", choices=("active", "expired", "revoked"))

    mint = command("credential", commands.credential, "mint a grant's credential (printed once, alone on stdout)")
    mint.add_argument("grant_id", type=_positive_id)

    revoke = command("revoke", commands.revoke, "end a grant now")
    revoke.add_argument("grant_id", type=_positive_id)
    revoke.add_argument("--reason", help="why it ends early")

    listing = command("secrets", commands.secrets, "list secrets you can see (metadata only)")
    listing.add_argument("--keyring")
    listing.add_argument("--kind", choices=("connected_account", "generic"))

    reveal = command("reveal", commands.reveal, "reveal a secret's value (printed alone on stdout)")
    reveal.add_argument("secret_id", type=_positive_id)
    reveal.add_argument("--reason", required=True, help="why you need the value now (audited)")
    reveal.add_argument(
        "--credential",
        help="a grant credential, or - to read it from stdin (default: $JITCTL_CREDENTIAL, else your token)",
    )
    return parser


def _report(err: Any, refused: ApiError) -> None:
    err.write(f"jitctl: {refused.detail}" + (f" (HTTP {refused.status})" if refused.status else "") + "\n")
    for field, message in iter_field_errors(refused.errors):
        # The detail already summarises the first message of each field; the rest follow it.
        if f"{field}: {message}" not in refused.detail:
            err.write(f"  {field}: {message}\n")
    if refused.status == 401:
        err.write("  Sign in again with `jitctl login`, or check JITCTL_TOKEN / the credential.\n")
    if refused.status == 429 and refused.retry_after:
        err.write(f"  Try again in {refused.retry_after} seconds.\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # exits 2 on a usage error, as argparse does
    err = sys.stderr
    try:
        server = base_url_check(args.url or os.environ.get(URL_ENV) or DEFAULT_URL, allow_http=args.insecure_http)
        ctx = commands.Context(
            server=server,
            as_json=args.json,
            assume_yes=getattr(args, "yes", False),
            out=sys.stdout,
            err=err,
            stdin=sys.stdin,
        )
        args.handler(ctx, args)
    except (UnsafeUrl, commands.UsageProblem) as problem:
        err.write(f"jitctl: {problem}\n")
        return EXIT_USAGE
    except ApiError as refused:
        _report(err, refused)
        return EXIT_REFUSED
    except (Unreachable, StoreProblem, commands.Refusal) as problem:
        err.write(f"jitctl: {problem}\n")
        return EXIT_REFUSED
    except (KeyboardInterrupt, EOFError):
        err.write("\njitctl: cancelled.\n")
        return EXIT_REFUSED
    return EXIT_OK
