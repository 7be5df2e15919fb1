"""Audit trail at scale: the auditors' list API, verification, export, and what a write costs.

On a PostgreSQL database holding a valid hash-chained trail of N events (default 1,000,000) and as
many django-auditlog ``LogEntry`` rows:

(a) ``GET /api/v1/audit/events/``, first page at the default page size, p50/p99 per filter, through
    gunicorn with an auditor's API token; following ``next`` a few pages deep. Next to it the
    django-auditlog admin changelist ``/admin/auditlog/logentry/`` as django-auditlog ships it
    (and, for reference, the app's own ``/admin/audit/auditevent/``). Target: p50 <= 50 ms.
(b) ``verify_chain()`` and ``verify_audit()`` in-process over the whole trail.
    Target: 1,000,000 events in <= 20 s.
(c) ``GET /api/v1/audit/export/?format=jsonl|csv``, the whole trail and one week of it: rows/s,
    MB/s, and the peak RSS of the gunicorn worker that served it (does it stream?).
(d) the cost of an audit write: ``audit_record`` at the head of the trail against a plain INSERT of
    the same row into a non-chained table of the same shape and size, and its share of
    ``request_submit`` (a typical action, which includes one audit write).

    .venv/bin/python bench/audit.py                       # seed 1,000,000 + 1,000,000, measure
    .venv/bin/python bench/audit.py --reuse               # keep an earlier seed of the same size
    .venv/bin/python bench/audit.py --events 100000 --requests 30 --skip-export

Uses its own database (``--database-url``, default ``jit_bench_audit``) and Redis database 11.
Without ``--reuse`` (or when the seed recorded in the database does not match the options) the
database is dropped and created again: its name must contain "bench". Seeding writes the chain
with PostgreSQL ``COPY`` (hashes computed by ``jitaccess.audit.chain.event_hash``, so the chain
verifies), and the django-auditlog rows likewise; the bench's users are made with django-auditlog
switched off, so that their config.changed events do not precede the seeded 90 days. Every run
adds a few hundred events to the trail (tokens, timed writes, exports). Exits non-zero on wrong
behaviour (a failed request, an invalid chain, an export with the wrong number of rows); missed
performance targets are reported as FAIL in the summary. See docs/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import hashlib
import http.client
import json
import math
import os
import pstats
import queue
import random
import re
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from app_server import Gunicorn, child_pids, server_environment  # bench/ is on sys.path when a bench runs as a script
from temp_run import run_in_temp_dir

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/jit_bench_audit"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/11"
TARGET_LIST_P50_MS = 50.0
TARGET_VERIFY_S_PER_MILLION = 20.0
BENCH_PASSWORD = "bench-only-password-not-a-secret"
# Public and bench-only. Fixed so that a reused database stays consistent from run to run.
BENCH_ROOT_KEY = base64.b64encode(hashlib.sha256(b"jitaccess bench/audit.py root key; bench only").digest()).decode()
BENCH_SIGNING_KEY = base64.b64encode(hashlib.sha256(b"jitaccess bench/audit.py signing key; bench only").digest())
SEED_DAYS = 90
PLAIN_TABLE = "bench_plain_event"
META_TABLE = "bench_audit_seed"
LOGENTRY_COLUMNS = (
    "object_pk",
    "object_id",
    "object_repr",
    "action",
    "changes",
    "timestamp",
    "actor_id",
    "content_type_id",
    "remote_addr",
    "cid",
    "changes_text",
    "actor_email",
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="audit events to seed (default 1000000)")
    parser.add_argument(
        "--log-entries", type=int, default=None, help="django-auditlog LogEntry rows to seed (default: --events)"
    )
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL, help=f"default {DEFAULT_DATABASE_URL}")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL, help=f"default {DEFAULT_REDIS_URL}")
    parser.add_argument("--reuse", action="store_true", help="skip seeding when the database holds this seed")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the generated trail (default 1)")
    parser.add_argument("--batch", type=int, default=100_000, help="rows per COPY batch (default 100000)")
    parser.add_argument("--requests", type=int, default=100, help="timed requests per API case (default 100)")
    parser.add_argument("--admin-requests", type=int, default=20, help="timed requests per admin page (default 20)")
    parser.add_argument("--pages", type=int, default=5, help="pages followed through next (default 5)")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn workers (default 3, as the Dockerfile)")
    parser.add_argument(
        "--worker-class",
        choices=["sync", "gthread"],
        default="gthread",
        help="gunicorn worker class (default gthread, as the Dockerfile)",
    )
    parser.add_argument("--threads", type=int, default=4, help="threads per gthread worker (default 4)")
    parser.add_argument(
        "--timeout", type=int, default=30, help="gunicorn worker timeout in s (default 30, gunicorn's and the image's)"
    )
    parser.add_argument("--write-samples", type=int, default=300, help="timed rounds of (d) (default 300)")
    parser.add_argument("--skip-http", action="store_true", help="skip (a) and (c), the server part")
    parser.add_argument("--skip-admin", action="store_true", help="skip the admin changelists of (a)")
    parser.add_argument("--skip-verify", action="store_true", help="skip (b)")
    parser.add_argument("--skip-export", action="store_true", help="skip (c)")
    parser.add_argument("--skip-write", action="store_true", help="skip (d)")
    parser.add_argument(
        "--profile-verify",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="also cProfile the first SECONDS of verify_chain() and print the top costs",
    )
    parser.add_argument("--keep-temp", action="store_true", help="keep the gunicorn log")
    args = parser.parse_args(argv)
    if args.log_entries is None:
        args.log_entries = args.events
    if min(args.events, args.batch, args.requests, args.admin_requests, args.workers, args.write_samples) < 1:
        parser.error("--events, --batch, --requests, --admin-requests, --workers, --write-samples must be positive")
    if args.log_entries < 0 or args.pages < 0 or args.timeout < 0 or args.profile_verify < 0:
        parser.error("--log-entries, --pages, --timeout and --profile-verify must not be negative")
    return args


# --- environment and database ---------------------------------------------------------------------


def database_params(url: str) -> tuple[str, dict[str, Any]]:
    import dj_database_url

    config = dj_database_url.parse(url)
    if config["ENGINE"] != "django.db.backends.postgresql":
        raise SystemExit(f"bench/audit.py measures PostgreSQL; --database-url names {config['ENGINE']}")
    params = {key: config[name] for key, name in [("host", "HOST"), ("port", "PORT"), ("user", "USER")] if config[name]}
    if config["PASSWORD"]:
        params["password"] = config["PASSWORD"]
    return config["NAME"], params


def sink_path(database: str) -> Path:
    """Signed checkpoints live outside the database and must outlive the run's temp dir as long
    as the database keeps them, or verify_audit() would rightly complain."""
    return Path.home() / ".cache" / "jitaccess-bench" / f"{database}-audit-checkpoints.jsonl"


def configure_environment(args: argparse.Namespace, temp_dir: Path, database: str) -> None:
    """The bench's database and broker always; other defaults a caller's environment may override.
    gunicorn inherits the same environment."""
    os.environ["DATABASE_URL"] = args.database_url  # never a DATABASE_URL from the shell: we drop it
    os.environ["REDIS_URL"] = args.redis_url
    server_environment(
        temp_dir, root_key=BENCH_ROOT_KEY, signing_key=BENCH_SIGNING_KEY.decode(), sink=sink_path(database)
    )


def recorded_seed(database: str, params: dict[str, Any]) -> dict[str, Any] | None:
    """What an earlier run seeded into this database, or None (no database, no seed, no table)."""
    import psycopg

    try:
        with psycopg.connect(dbname=database, autocommit=True, **params) as conn:
            row = conn.execute(
                f"SELECT events, log_entries, seed, seeded_at FROM {META_TABLE} ORDER BY seeded_at DESC LIMIT 1"
            ).fetchone()
    except psycopg.Error:
        return None
    if row is None:
        return None
    return {"events": row[0], "log_entries": row[1], "seed": row[2], "seeded_at": row[3]}


def recreate_database(database: str, params: dict[str, Any]) -> None:
    import psycopg
    from psycopg import sql

    if "bench" not in database:
        raise SystemExit(f"refusing to drop database {database!r}: a bench database's name contains 'bench'")
    with psycopg.connect(dbname="postgres", autocommit=True, **params) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(database)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    sink_path(database).unlink(missing_ok=True)


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile: an observed value, never an interpolation."""
    if not sorted_values:
        return float("nan")
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


# --- the cast -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    id: int
    username: str
    ip: str


@dataclass
class Cast:
    root: Person
    auditor: Person
    secadmin: Person
    admins: list[Person]
    legal_l1: list[Person]
    legal_l2: list[Person]
    services: list[Person]
    entitlement: Any = None

    def everyone(self) -> list[Person]:
        return [self.root, self.auditor, self.secadmin, *self.admins, *self.legal_l1, *self.legal_l2, *self.services]


def bench_cast() -> Cast:
    """Users, groups and one entitlement; idempotent. Only the two who sign in get a password
    (a PBKDF2 hash costs about a second on these cores)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from approvals.models import ApprovalStage, Entitlement, Purpose, SecurityGroup
    from jitaccess import roles

    User = get_user_model()

    def person(username: str, groups: list[str], ip: str, *, password: bool = False, **flags: Any) -> Person:
        user, created = User.objects.get_or_create(username=username, defaults=flags)
        if created:
            if password:
                user.set_password(BENCH_PASSWORD)
            else:
                user.set_unusable_password()
            user.save()
        user.groups.add(*[Group.objects.get_or_create(name=name)[0] for name in groups])
        return Person(user.pk, username, ip)

    cast = Cast(
        # A superuser for django-auditlog's admin, and an auditor for the app's AuditEvent admin.
        root=person("bench-root", [roles.AUDITORS], "10.20.0.2", password=True, is_superuser=True, is_staff=True),
        auditor=person("bench-auditor", [roles.AUDITORS], "10.20.0.3", password=True),
        secadmin=person("bench-secadmin", [roles.SECURITY_ADMINS], "10.20.0.4"),
        admins=[person(f"bench-admin-{n}", [roles.DATACENTER_ADMINS], f"10.20.1.{n}") for n in range(1, 7)],
        legal_l1=[person(f"bench-legal1-{c}", ["bench-legal-l1"], f"10.20.2.{n}") for n, c in enumerate("ab", 1)],
        legal_l2=[person(f"bench-legal2-{c}", ["bench-legal-l2"], f"10.20.3.{n}") for n, c in enumerate("ab", 1)],
        services=[
            person(f"bench-svc-{name}", [], f"10.30.0.{n}", is_service_account=True)
            for n, name in enumerate(["backup", "deploy", "monitor"], 1)
        ],
    )
    group, _ = SecurityGroup.objects.get_or_create(name="bench-audit", defaults={"description": "Audit bench."})
    entitlement, _ = Entitlement.objects.update_or_create(
        slug="bench-audit",
        defaults={
            "name": "Audit bench",
            "security_group": group,
            "requester_group": Group.objects.get(name=roles.DATACENTER_ADMINS),
            "purposes": list(Purpose.values),
            "requires_ticket": True,
            "default_duration_seconds": 3600,
            "max_duration_seconds": 8 * 3600,
            "is_active": True,
        },
    )
    for order, approvers in [(1, "bench-legal-l1"), (2, "bench-legal-l2")]:
        ApprovalStage.objects.get_or_create(
            entitlement=entitlement,
            order=order,
            defaults={"name": f"Stage {order}", "approver_group": Group.objects.get(name=approvers)},
        )
    cast.entitlement = entitlement
    return cast


# --- the generated trail --------------------------------------------------------------------------

SUCCESS, DENIED, FAILED = "success", "denied", "failed"
ENTITLEMENTS = ["dkm-prod", "dkm-staging", "exchange-admin", "sql-prod-read", "hsm-ops", "ad-tier0"]
KEYRINGS = ["customer-keys", "backup-keys", "tenant-dkm"]
PURPOSES = ["debugging", "incident", "maintenance", "customer-request"]
PATHS = [
    ("GET", "/api/v1/secrets/{s}/"),
    ("POST", "/api/v1/secrets/{s}/reveal/"),
    ("GET", "/api/v1/entitlements/"),
    ("GET", "/api/v1/grants/{g}/"),
    ("GET", "/api/v1/secrets/"),
]


@dataclass(frozen=True)
class Event:
    actor: Person | None
    action: str
    target_type: str
    target_id: str
    grant_id: int | None
    outcome: str
    data: dict[str, Any]


class TrailGenerator:
    """A plausible mix: requests that go through two approval stages and become grants with tens
    of events each (HTTP requests and reveals under the grant), interleaved with sign-ins, token
    use, service accounts revealing secrets, a few refusals and failures, daily key rotations."""

    def __init__(self, cast: Cast, rng: random.Random, active: int = 40, background_share: float = 0.15) -> None:
        self.cast = cast
        self.rng = rng
        self.background_share = background_share
        self.next_request = 1
        self.next_grant = 1
        self.next_credential = 1
        self.next_token = 1
        self.stories = [self.story() for _ in range(active)]

    def hex(self, bits: int = 128) -> str:
        return f"{self.rng.getrandbits(bits):0{bits // 4}x}"

    def secret(self) -> int:
        # A few secrets are revealed far more often than the rest.
        return int(self.rng.paretovariate(1.1)) % 400 + 1

    def story(self) -> Iterator[Event]:
        rng, cast = self.rng, self.cast
        rid = str(self.next_request)
        self.next_request += 1
        req = rng.choice(cast.admins)
        l1, l2 = rng.choice(cast.legal_l1), rng.choice(cast.legal_l2)
        ent = rng.choice(ENTITLEMENTS)
        kind = rng.random()
        if kind < 0.02:
            yield Event(req, "request.submit_refused", "entitlement", ent, None, DENIED, {"code": "no_stages"})
            return
        digest = self.hex(256)
        duration = rng.choice([1800, 3600, 7200, 14400])
        yield Event(
            req,
            "request.submitted",
            "access_request",
            rid,
            None,
            SUCCESS,
            {
                "entitlement": ent,
                "purpose": rng.choice(PURPOSES),
                "ticket": f"INC-{rng.randrange(10000, 99999)}",
                "duration_seconds": duration,
                "digest": digest,
            },
        )
        yield Event(None, "request.stage_opened", "access_request", rid, None, SUCCESS, {"stage": 1})
        if kind < 0.10:
            data = {"stage": 1, "digest": digest, "comment": "No ticket context"}
            yield Event(l1, "decision.denied", "access_request", rid, None, SUCCESS, data)
            yield Event(l1, "request.denied", "access_request", rid, None, SUCCESS, {})
            return
        if kind < 0.14:
            yield Event(req, "request.withdrawn", "access_request", rid, None, SUCCESS, {})
            return
        if kind < 0.19:
            yield Event(None, "request.expired", "access_request", rid, None, SUCCESS, {})
            return
        if rng.random() < 0.05:
            data = {"decision": "approve", "stage": 1, "open_stage": 1}
            yield Event(req, "decision.refused.self_approval", "access_request", rid, None, DENIED, data)
        yield Event(l1, "decision.approved", "access_request", rid, None, SUCCESS, {"stage": 1, "digest": digest})
        yield Event(None, "request.stage_opened", "access_request", rid, None, SUCCESS, {"stage": 2})
        yield Event(l2, "decision.approved", "access_request", rid, None, SUCCESS, {"stage": 2, "digest": digest})
        yield Event(l2, "request.approved", "access_request", rid, None, SUCCESS, {})
        grant = self.next_grant
        self.next_grant += 1
        g = str(grant)
        data = {"request": int(rid), "entitlement": ent, "security_group": ent, "duration_seconds": duration}
        yield Event(None, "grant.issued", "grant", g, grant, SUCCESS, data)
        credential = self.next_credential
        self.next_credential += 1
        data = {"prefix": f"jitg_{self.hex(24)}"}
        yield Event(req, "credential.minted", "grant_credential", str(credential), grant, SUCCESS, data)
        for _ in range(rng.randint(5, 60)):
            roll = rng.random()
            if roll < 0.07:
                data = {"keyring": rng.choice(KEYRINGS), "via": "grant", "reason": "bench", "value_version": 1}
                yield Event(req, "secret.revealed", "secret", str(self.secret()), grant, SUCCESS, data)
            elif roll < 0.075:
                data = {"keyring": rng.choice(KEYRINGS), "refusal": "no_access"}
                yield Event(req, "secret.reveal_denied", "secret", str(self.secret()), grant, DENIED, data)
            else:
                method, path = rng.choice(PATHS)
                status = 200 if rng.random() < 0.97 else rng.choice([403, 404])
                data = {"method": method, "path": path.format(s=self.secret(), g=g), "status": status}
                yield Event(req, "grant.http_request", "grant", g, grant, SUCCESS, data)
        if rng.random() < 0.12:
            who = rng.choice([req, cast.secadmin])
            yield Event(who, "grant.revoked", "grant", g, grant, SUCCESS, {"reason": "done early"})
        else:
            yield Event(None, "grant.expired", "grant", g, grant, SUCCESS, {"reason": "expired"})

    def background(self) -> list[Event]:
        rng, cast = self.rng, self.cast
        roll = rng.random()
        people = [*cast.admins, *cast.legal_l1, *cast.legal_l2, cast.secadmin, cast.auditor]
        if roll < 0.25:
            who = rng.choice(people)
            return [Event(who, "auth.login", "user", who.username, None, SUCCESS, {"method": "password+totp"})]
        if roll < 0.33:
            who = rng.choice(people)
            return [Event(who, "auth.logout", "user", who.username, None, SUCCESS, {})]
        if roll < 0.39:
            name = rng.choice(people).username if rng.random() < 0.8 else f"unknown-{rng.randrange(1000)}"
            return [Event(None, "auth.login_failed", "user", name, None, DENIED, {})]
        if roll < 0.54:
            who = rng.choice([*cast.services, *cast.admins])
            token = self.next_token
            self.next_token += 1
            data = {"prefix": f"jit_{self.hex(24)}"}
            return [Event(who, "auth.token_issued", "api_token", str(token), None, SUCCESS, data)]
        if roll < 0.56:
            who = rng.choice(cast.admins)
            token = str(rng.randrange(1, self.next_token))
            return [Event(who, "auth.token_revoked", "api_token", token, None, SUCCESS, {})]
        if roll < 0.88:
            who = rng.choice(cast.services)
            data = {"keyring": rng.choice(KEYRINGS), "via": "standing", "reason": "backup run", "value_version": 1}
            return [Event(who, "secret.revealed", "secret", str(self.secret()), None, SUCCESS, data)]
        if roll < 0.92:
            who = rng.choice([*cast.services, *cast.admins])
            data = {"keyring": rng.choice(KEYRINGS), "refusal": "no_access"}
            return [Event(who, "secret.reveal_denied", "secret", str(self.secret()), None, DENIED, data)]
        if roll < 0.923:
            who = rng.choice(cast.services)
            data = {"keyring": rng.choice(KEYRINGS), "error": "envelope_invalid"}
            return [Event(who, "secret.reveal_failed", "secret", str(self.secret()), None, FAILED, data)]
        if roll < 0.953:
            data = {"model": rng.choice(["entitlement", "approvalstage", "securitygroup"]), "object": "dkm-prod"}
            return [
                Event(cast.secadmin, "config.changed", "entitlement", rng.choice(ENTITLEMENTS), None, SUCCESS, data)
            ]
        if roll < 0.973:
            action = rng.choice(["security_group.member_added", "security_group.member_removed"])
            data = {"user": rng.choice(cast.services).username}
            return [Event(cast.secadmin, action, "security_group", rng.choice(ENTITLEMENTS), None, SUCCESS, data)]
        if roll < 0.978:
            data = {"rotation_period_seconds": 86400}
            ring = rng.choice(KEYRINGS)
            return [Event(cast.secadmin, "keyring.policy_changed", "keyring", ring, None, SUCCESS, data)]
        if roll < 0.98:
            ring = rng.choice(KEYRINGS)
            version = rng.randrange(2, 200)
            data = {"from_version": version - 1, "to_version": version, "scheduled": True}
            rewrapped = {"to_version": version, "rewrapped": rng.randrange(100, 5000), "failed": 0}
            return [
                Event(None, "key.rotated", "keyring", ring, None, SUCCESS, data),
                Event(None, "key.rewrapped", "keyring", ring, None, SUCCESS, rewrapped),
            ]
        if roll < 0.983:
            data = {"format": rng.choice(["jsonl", "csv"]), "filters": {"outcome": "denied"}}
            return [Event(cast.auditor, "audit.exported", "", "", None, SUCCESS, data)]
        action, target_type, data = rng.choice(
            [
                ("request.withdraw_refused", "access_request", {"code": "not_pending"}),
                ("credential.mint_refused", "grant", {"code": "grant_not_active"}),
                ("grant.revoke_refused", "grant", {"code": "not_active"}),
                ("decision.refused.not_in_stage_group", "access_request", {"stage": 1}),
            ]
        )
        who = rng.choice(cast.admins)
        return [Event(who, action, target_type, str(rng.randrange(1, self.next_request)), None, DENIED, data)]

    def events(self) -> Iterator[Event]:
        rng = self.rng
        while True:
            if rng.random() < self.background_share:
                yield from self.background()
                continue
            index = rng.randrange(len(self.stories))
            for event in self.stories[index]:
                yield event
                break
            else:
                self.stories[index] = self.story()


def copy_text(value: str) -> str:
    """A value for COPY's text format."""
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        value = value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return value


def event_lines(
    cast: Cast, count: int, *, first_seq: int, prev_hash: str, start: datetime, end: datetime, rng: random.Random
) -> Iterator[tuple[str, str]]:
    """(COPY line, hash) for ``count`` chained events with ``at`` spread evenly over [start, end)."""
    from jitaccess.audit.chain import event_hash

    step = max(1, int((end - start) / timedelta(microseconds=1)) // count)
    generator = TrailGenerator(cast, rng)
    correlation = generator.hex()
    for index, event in zip(range(count), generator.events(), strict=False):
        seq = first_seq + index
        at = start + timedelta(microseconds=index * step + rng.randrange(step))
        actor = event.actor
        if rng.random() < 0.7:  # most HTTP requests write one event; some write several
            correlation = generator.hex()
        ip = actor.ip if actor else (None if event.action.startswith(("grant.expired", "request.")) else "10.40.0.9")
        fields = {
            "seq": seq,
            "at": at,
            "actor_id": actor.id if actor else None,
            "actor_name": actor.username if actor else "",
            "action": event.action,
            "target_type": event.target_type,
            "target_id": event.target_id,
            "grant_id": event.grant_id,
            "outcome": event.outcome,
            "ip": ip,
            "correlation_id": correlation,
            "data": event.data,
            "prev_hash": prev_hash,
        }
        digest = event_hash(**fields)
        line = "\t".join(
            (
                str(seq),
                at.isoformat(),
                str(actor.id) if actor else "\\N",
                fields["actor_name"],
                event.action,
                event.target_type,
                copy_text(event.target_id),
                str(event.grant_id) if event.grant_id is not None else "\\N",
                event.outcome,
                ip or "\\N",
                correlation,
                copy_text(json.dumps(event.data, separators=(",", ":"), ensure_ascii=False)),
                prev_hash,
                digest,
            )
        )
        prev_hash = digest
        yield line, digest


def copy_batches(
    conn: Any, table: str, columns: tuple[str, ...], lines: Iterator[str], batch: int, label: str, total: int
) -> None:
    """COPY ``lines`` into ``table``, one transaction per batch. A thread builds the next batch
    (Python: hashing) while PostgreSQL loads the previous one (the other core)."""
    batches: queue.Queue[bytes | None | BaseException] = queue.Queue(maxsize=2)

    def produce() -> None:
        try:
            chunk: list[str] = []
            for line in lines:
                chunk.append(line)
                if len(chunk) == batch:
                    batches.put(("\n".join(chunk) + "\n").encode())
                    chunk = []
            if chunk:
                batches.put(("\n".join(chunk) + "\n").encode())
            batches.put(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
            batches.put(exc)

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    done, started = 0, time.monotonic()
    statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    while True:
        item = batches.get()
        if item is None:
            break
        if isinstance(item, BaseException):
            raise item
        with conn.transaction(), conn.cursor() as cursor, cursor.copy(statement) as copy:
            copy.write(item)
        done += item.count(b"\n")
        elapsed = time.monotonic() - started
        print(f"    {label}: {done:>9,} / {total:,} rows, {elapsed:5.1f} s", flush=True)
    producer.join()


def seed(args: argparse.Namespace, database: str, params: dict[str, Any], cast: Cast) -> dict[str, float]:
    """The trail, the LogEntry rows and the plain comparison table; returns seconds per step."""
    import psycopg
    from django.contrib.auth import get_user_model
    from django.contrib.contenttypes.models import ContentType

    from approvals.models import ApprovalStage, Entitlement, SecurityGroup, StandingMembership
    from jitaccess.audit.chain import GENESIS_HASH
    from jitaccess.audit.verification import ROW_FIELDS  # the event table's columns, in chain order
    from keys.models import KeyRing

    rng = random.Random(args.seed)
    timings: dict[str, float] = {}
    with psycopg.connect(dbname=database, autocommit=True, **params) as conn:
        head = conn.execute("SELECT seq, hash FROM audit_auditevent ORDER BY seq DESC LIMIT 1").fetchone()
        if head is not None:
            raise RuntimeError(f"a fresh bench database already holds {head[0]} audit events")
        end = datetime.now(UTC) - timedelta(minutes=2)
        start = end - timedelta(days=SEED_DAYS)

        conn.execute("SET maintenance_work_mem = '512MB'")  # this session's index builds only
        started = time.monotonic()
        lines = (
            line
            for line, _ in event_lines(
                cast, args.events, first_seq=1, prev_hash=GENESIS_HASH, start=start, end=end, rng=rng
            )
        )
        with indexes_built_after(conn, "audit_auditevent", timings):
            copy_batches(conn, "audit_auditevent", ROW_FIELDS, lines, args.batch, "audit events", args.events)
            timings["audit events: hash + COPY"] = time.monotonic() - started

        started = time.monotonic()
        models = [Entitlement, ApprovalStage, SecurityGroup, StandingMembership, KeyRing, get_user_model()]
        content_types = [ContentType.objects.get_for_model(model).pk for model in models]
        with indexes_built_after(conn, "auditlog_logentry", timings):
            copy_batches(
                conn,
                "auditlog_logentry",
                LOGENTRY_COLUMNS,
                logentry_lines(cast, args.log_entries, content_types, start, end, rng),
                args.batch,
                "log entries",
                args.log_entries,
            )
            timings["LogEntry rows: COPY"] = time.monotonic() - started

        started = time.monotonic()
        create_plain_table(conn)
        timings[f"{PLAIN_TABLE}: INSERT … SELECT + indexes"] = time.monotonic() - started

        started = time.monotonic()
        # What autovacuum does soon after a load like this (insert-triggered vacuum, analyze).
        for table in ("audit_auditevent", "auditlog_logentry", PLAIN_TABLE):
            conn.execute(f"VACUUM ANALYZE {table}")
        timings["VACUUM ANALYZE"] = time.monotonic() - started
    return timings


def logentry_lines(
    cast: Cast, count: int, content_types: list[int], start: datetime, end: datetime, rng: random.Random
) -> Iterator[str]:
    """django-auditlog rows as its middleware writes them for admin edits of configuration."""
    step = max(1, int((end - start) / timedelta(microseconds=1)) // max(count, 1))
    editors = [cast.secadmin, cast.root]
    fields = ["description", "max_duration_seconds", "pending_ttl_seconds", "requires_ticket", "is_active", "name"]
    for index in range(count):
        at = start + timedelta(microseconds=index * step + rng.randrange(step))
        roll = rng.random()
        action = 0 if roll < 0.1 else (2 if roll < 0.15 else 1)
        object_id = rng.randrange(1, 2000)
        changed = rng.sample(fields, rng.randint(1, 3))
        changes = {name: [f"old {name} {rng.randrange(100)}", f"new {name} {rng.randrange(100)}"] for name in changed}
        editor = rng.choice(editors)
        yield "\t".join(
            (
                str(object_id),
                str(object_id),
                f"object {object_id}",
                str(action),
                copy_text(json.dumps(changes, separators=(",", ":"))),
                at.isoformat(),
                str(editor.id),
                str(rng.choice(content_types)),
                editor.ip,
                f"{rng.getrandbits(128):032x}",
                "",
                "",
            )
        )


# Indexes that back no constraint (primary key, unique): those a bulk load may drop and rebuild.
SECONDARY_INDEXES = """
SELECT i.indexname, i.indexdef FROM pg_indexes i
WHERE i.schemaname = current_schema() AND i.tablename = %s
  AND NOT EXISTS (
    SELECT 1 FROM pg_constraint c WHERE c.conindid = format('%%I.%%I', i.schemaname, i.indexname)::regclass
  )
"""


@contextmanager
def indexes_built_after(conn: Any, table: str, timings: dict[str, float]) -> Iterator[None]:
    """Drop the table's secondary indexes for the load and build them again afterwards from their
    own definitions (pg_indexes): a sorted build is several times faster than keeping a dozen
    indexes up to date row by row. Constraints (primary key, unique seq and hash, foreign keys)
    stay and are checked during the load. A seed that stops half-way leaves the database without
    its bench_audit_seed row, so the next run drops and re-creates it."""
    from psycopg import sql

    indexes = conn.execute(SECONDARY_INDEXES, [table]).fetchall()
    for name, _ in indexes:
        conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
    yield
    started = time.monotonic()
    for _, definition in indexes:
        conn.execute(definition)
    timings[f"{table}: {len(indexes)} indexes rebuilt"] = time.monotonic() - started


def create_plain_table(conn: Any) -> None:
    """Same columns, indexes and actor foreign key as audit_auditevent, no chain, no trigger, and
    the same rows, so that a single INSERT meets indexes of the same size."""
    conn.execute(f"DROP TABLE IF EXISTS {PLAIN_TABLE}")
    conn.execute(f"CREATE TABLE {PLAIN_TABLE} (LIKE audit_auditevent INCLUDING IDENTITY)")
    conn.execute(f"INSERT INTO {PLAIN_TABLE} SELECT * FROM audit_auditevent")
    conn.execute(f"SELECT setval(pg_get_serial_sequence('{PLAIN_TABLE}', 'id'), (SELECT max(id) FROM {PLAIN_TABLE}))")
    definitions = conn.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'audit_auditevent'").fetchall()
    for number, (definition,) in enumerate(definitions):
        definition = re.sub(
            r"INDEX \S+ ON \S+ USING", f"INDEX {PLAIN_TABLE}_{number} ON {PLAIN_TABLE} USING", definition
        )
        conn.execute(definition)
    conn.execute(
        f"ALTER TABLE {PLAIN_TABLE} ADD FOREIGN KEY (actor_id) REFERENCES accounts_user (id)"
        " DEFERRABLE INITIALLY DEFERRED"
    )


def plain_table_matches(conn: Any) -> bool:
    """Does the comparison table still have as many indexes as the audit table (a migration may
    have added one since it was made)?"""
    count = "SELECT count(*) FROM pg_indexes WHERE tablename = %s"
    (audit,) = conn.execute(count, ["audit_auditevent"]).fetchone()
    (plain,) = conn.execute(count, [PLAIN_TABLE]).fetchone()
    return audit == plain


# --- gunicorn and HTTP ----------------------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes
    seconds: float

    def json(self) -> Any:
        return json.loads(self.body)


class Client:
    """One keep-alive HTTP/1.1 client with a cookie jar and an optional bearer token."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        self.cookies: dict[str, str] = {}
        self.token: str | None = None

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        headers.update(extra or {})
        return headers

    def keep_cookies(self, response: http.client.HTTPResponse) -> None:
        for header in response.headers.get_all("Set-Cookie") or []:
            name, _, rest = header.partition("=")
            self.cookies[name.strip()] = rest.split(";", 1)[0]

    def request(
        self, method: str, path: str, *, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> Response:
        started = time.perf_counter()
        try:
            self.conn.request(method, path, body=body, headers=self.headers(headers))
            response = self.conn.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()
            raise
        elapsed = time.perf_counter() - started
        self.keep_cookies(response)
        return Response(response.status, response.headers, payload, elapsed)

    def get(self, path: str) -> Response:
        return self.request("GET", path)

    def stream(self, path: str, on_chunk: Callable[[bytes], None], progress: dict[str, Any]) -> None:
        """GET and hand the body to ``on_chunk`` as it arrives; ``progress`` gets the status and
        the seconds to the first byte as soon as they are known (a stream may break later)."""
        # A fresh connection: a kept-alive one may have been closed by the server while idle
        # (gthread workers keep idle connections 2 s), which would look like a failed export.
        self.conn.close()
        started = time.perf_counter()
        self.conn.request("GET", path, headers=self.headers({"Accept": "*/*"}))
        response = self.conn.getresponse()
        progress["status"] = response.status
        while chunk := response.read1(1 << 18):
            if "first_byte" not in progress:
                progress["first_byte"] = time.perf_counter() - started
            on_chunk(chunk)


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


# --- how busy the machine was ---------------------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent on anything but idle and iowait, all cores together."""
    user, nice, system, idle, iowait, irq, softirq, steal = map(int, Path("/proc/stat").read_text().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def proc_cpu(pid: int, *, reaped: bool = False) -> float:
    """utime + stime of one process (all its threads), plus its reaped children's when asked;
    0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if reaped else 0)
    return ticks / CLOCK_TICKS


def database_backends() -> list[int]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        return [row[0] for row in cursor.fetchall()]


class Busy:
    """CPU use over a section: this bench, gunicorn's workers, the database's PostgreSQL backends,
    and everything else on the machine (other people's test suites, mostly)."""

    def __init__(self, server: Gunicorn | None = None) -> None:
        self.server = server

    def snapshot(self) -> tuple[float, float, dict[str, dict[int, float]]]:
        # This process and its children, live (per pid) and reaped (in its own cutime/cstime):
        # verify_audit() hashes in a process pool. The same for gunicorn: live workers, and the
        # master's reaped children (a worker killed by its timeout).
        me = os.getpid()
        workers = self.server.workers() if self.server else []
        groups = {
            "bench": {me: proc_cpu(me, reaped=True), **{pid: proc_cpu(pid) for pid in child_pids(me)}},
            "gunicorn": {pid: proc_cpu(pid) for pid in workers},
            "postgres": {pid: proc_cpu(pid) for pid in database_backends()},
        }
        if self.server and self.server.process:
            groups["gunicorn"][self.server.process.pid] = proc_cpu(self.server.process.pid, reaped=True)
        return time.monotonic(), machine_busy_seconds(), groups

    def __enter__(self) -> Busy:
        self.before = self.snapshot()
        return self

    def __exit__(self, *exc: object) -> None:
        self.after = self.snapshot()

    def line(self) -> str:
        (t0, busy0, groups0), (t1, busy1, groups1) = self.before, self.after
        seconds, cores = t1 - t0, os.cpu_count() or 1
        # Per pid: a process that appeared counts from zero. A child that ended in between counted
        # its CPU so far before, and all of it after in its parent's reaped figure; so sum the
        # groups of our own processes as a whole, and match PostgreSQL backends (not ours) by pid.
        used = {
            name: sum(pids.values()) - sum(groups0[name].values())
            if name != "postgres"
            else sum(cpu - groups0[name].get(pid, 0.0) for pid, cpu in pids.items())
            for name, pids in groups1.items()
        }
        other = max(busy1 - busy0 - sum(used.values()), 0.0)
        shares = ", ".join(f"{name} {value:.1f}" for name, value in used.items() if value >= 0.05)
        return (
            f"CPU s over {seconds:.1f} s: {shares}; machine {(busy1 - busy0) / seconds / cores:.0%} busy"
            f" over {cores} cores, {other / seconds / cores:.0%} of them other work"
        )


# --- (a) the list API and the admin changelists ----------------------------------------------------


@dataclass
class Timing:
    label: str
    seconds: list[float] = field(default_factory=list)
    rows: int = 0
    errors: Counter = field(default_factory=Counter)
    note: str = ""

    def ms(self, pct: float) -> float:
        return percentile(sorted(self.seconds), pct) * 1000


def print_timings(rows: list[Timing], *, unit: str = "rows") -> None:
    width = max([len(row.label) for row in rows] + [20])
    unit_column = f" {unit:>6}" if unit else ""
    print(f"  {'':<{width}} {'n':>4} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}{unit_column}  errors")
    for row in rows:
        top = max(row.seconds) * 1000 if row.seconds else float("nan")
        print(
            f"  {row.label:<{width}} {len(row.seconds):>4} {row.ms(50):>8.2f} {row.ms(99):>8.2f} {top:>8.2f}"
            + (f" {row.rows:>6}" if unit else "")
            + f"  {sum(row.errors.values()) or ''}{(' ' + row.note) if row.note else ''}"
        )
        for error, number in row.errors.items():
            print(f"      {number} x {error}")


@dataclass(frozen=True)
class ListCase:
    label: str
    params: dict[str, str]
    check: Callable[[dict[str, Any]], bool] | None = None
    endpoint: str = "/api/v1/audit/events/"

    def path(self) -> str:
        return self.endpoint + (f"?{urlencode(self.params)}" if self.params else "")


def list_cases(facts: dict[str, Any]) -> list[ListCase]:
    """The filters of API.md, each with a check that the returned rows match it."""

    def at(row: dict[str, Any]) -> datetime:
        return datetime.fromisoformat(row["at"])

    def within(row: dict[str, Any]) -> bool:
        return facts["day"][0] <= at(row) < facts["day"][1]

    admin = facts["admin"]
    return [
        ListCase("no filter", {}),
        ListCase(f"actor={admin}", {"actor": admin}, lambda r: r.get("actor") in (admin, facts["admin_id"])),
        ListCase(
            "action=grant.http_request (common)",
            {"action": "grant.http_request"},
            lambda r: r["action"] == "grant.http_request",
        ),
        ListCase("action=key.rotated (rare)", {"action": "key.rotated"}, lambda r: r["action"] == "key.rotated"),
        ListCase("action=decision.* (prefix)", {"action": "decision.*"}, lambda r: r["action"].startswith("decision.")),
        ListCase(f"grant={facts['grant']}", {"grant": str(facts["grant"])}, lambda r: r["grant"] == facts["grant"]),
        ListCase("outcome=denied", {"outcome": "denied"}, lambda r: r["outcome"] == "denied"),
        ListCase(
            "since/until: 1 day mid-range", {"since": iso(facts["day"][0]), "until": iso(facts["day"][1])}, within
        ),
        ListCase(
            f"target_type=secret&target_id={facts['secret']}",
            {"target_type": "secret", "target_id": str(facts["secret"])},
            lambda r: r["target_type"] == "secret" and str(r["target_id"]) == str(facts["secret"]),
        ),
        ListCase(
            "actor+action+since/until (1 week)",
            {
                "actor": admin,
                "action": "grant.http_request",
                "since": iso(facts["week"][0]),
                "until": iso(facts["week"][1]),
            },
            lambda r: r["action"] == "grant.http_request" and facts["week"][0] <= at(r) < facts["week"][1],
        ),
        ListCase("(ref.) changes/: LogEntry rows, no filter", {}, endpoint="/api/v1/audit/changes/"),
    ]


def iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def trail_facts(cast: Cast) -> dict[str, Any]:
    """Filter values picked from the data: a grant, a secret and windows in the middle of the range."""
    from django.db.models import Max, Min

    from jitaccess.audit.models import AuditEvent

    bounds = AuditEvent.objects.aggregate(first=Min("at"), last=Max("at"), count=Max("seq"))
    middle = bounds["first"] + (bounds["last"] - bounds["first"]) / 2
    middle = middle.replace(hour=0, minute=0, second=0, microsecond=0)
    count = bounds["count"]
    grant = (
        AuditEvent.objects.filter(seq__gte=count // 2, action="grant.issued")
        .order_by("seq")
        .values_list("grant_id", flat=True)
    ).first()
    return {
        "admin": cast.admins[0].username,
        "admin_id": cast.admins[0].id,
        "grant": grant,
        "secret": 2,
        "day": (middle, middle + timedelta(days=1)),
        "week": (middle - timedelta(days=3), middle + timedelta(days=4)),
    }


def time_page(client: Client, path: str, timing: Timing, case: ListCase | None, record: bool) -> dict[str, Any] | None:
    try:
        response = client.get(path)
    except (OSError, http.client.HTTPException) as exc:
        timing.errors[type(exc).__name__] += 1
        return None
    if response.status != 200:
        timing.errors[f"HTTP {response.status}: {response.body[:160]!r}"] += 1
        return None
    body = response.json()
    if record:
        timing.seconds.append(response.seconds)
        timing.rows = len(body.get("results", []))
    if case is not None and case.check is not None:
        wrong = [row for row in body.get("results", []) if not case.check(row)]
        if wrong:
            timing.errors[f"{len(wrong)} rows do not match the filter, e.g. {wrong[0]}"] += 1
    return body


def bench_list(client: Client, facts: dict[str, Any], requests: int, pages: int) -> list[Timing]:
    """Round-robin over the cases (two untimed rounds first), so that background load on the
    machine falls on all of them alike; then the cursor walks."""
    cases = list_cases(facts)
    rows = [Timing(case.label) for case in cases]
    paths = [case.path() for case in cases]
    for index in range(requests + 2):
        for case, timing, path in zip(cases, rows, paths, strict=True):
            time_page(client, path, timing, case, record=index >= 2)
    for number in [0, 7]:  # no filter; the one-day window
        if pages < 1:
            break
        case = cases[number]
        timing = Timing(f"{case.label}: next, pages 2-{pages + 1}")
        for _ in range(max(1, requests // pages)):
            body = time_page(client, paths[number], Timing("untimed"), None, record=False)
            for _ in range(pages):
                if not body or not body.get("next"):
                    break
                body = time_page(client, path_of(body["next"]), timing, case, record=True)
        rows.append(timing)
    rows.sort(key=lambda row: row.label.startswith("(ref.)"))  # references last
    return rows


def admin_login(client: Client, username: str) -> None:
    page = client.get("/admin/login/?next=/admin/")
    match = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page.body)
    if page.status != 200 or match is None:
        raise RuntimeError(f"admin login form: HTTP {page.status}")
    form = urlencode(
        {
            "csrfmiddlewaretoken": match.group(1).decode(),
            "username": username,
            "password": BENCH_PASSWORD,
            "otp_device": "",
            "otp_token": "",
            "next": "/admin/",
        }
    ).encode()
    response = client.request(
        "POST",
        "/admin/login/?next=/admin/",
        body=form,
        headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"},
    )
    if response.status != 302 or "sessionid" not in client.cookies:
        raise RuntimeError(f"admin login refused: HTTP {response.status}")


def bench_admin(client: Client, requests: int, pages: list[tuple[str, str]]) -> list[Timing]:
    rows = []
    for label, path in pages:
        timing = Timing(label)
        for index in range(requests + 1):  # one untimed warm-up request
            try:
                response = client.get(path)
            except (OSError, http.client.HTTPException) as exc:
                timing.errors[type(exc).__name__] += 1
                continue
            if response.status != 200 or b'id="result_list"' not in response.body:
                timing.errors[f"HTTP {response.status} without a result list"] += 1
                continue
            if index:
                timing.seconds.append(response.seconds)
                table = response.body.split(b'id="result_list"', 1)[1].split(b"</table>", 1)[0]
                timing.rows = table.count(b"<tr") - 1  # less the header row
        rows.append(timing)
    return rows


def captured_admin_sql(path: str, username: str) -> list[tuple[str, float]]:
    """Every statement of one admin page with its time, through Django's test client in this
    process (second request: the first one warms the caches)."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client as DjangoClient
    from django.test.utils import CaptureQueriesContext

    client = DjangoClient(HTTP_HOST="127.0.0.1")
    client.force_login(get_user_model().objects.get(username=username))
    client.get(path)
    with CaptureQueriesContext(connection) as captured:
        response = client.get(path)
    if response.status_code != 200:
        return []
    return [(query["sql"], float(query["time"])) for query in captured.captured_queries]


def explain(sql: str) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of one captured statement (literal values, as Django logs it)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")
        return "\n".join(row[0] for row in cursor.fetchall())


def captured_list_sql(path: str, token: str) -> list[tuple[str, float]]:
    """The statements on the trail that one list request runs (through Django's test client in
    this process), with their time there."""
    from django.db import connection
    from django.test import Client as DjangoClient
    from django.test.utils import CaptureQueriesContext

    client = DjangoClient(HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_HOST="127.0.0.1")
    with CaptureQueriesContext(connection) as captured:
        response = client.get(path)
    if response.status_code != 200:
        return []
    return [
        (query["sql"], float(query["time"]))
        for query in captured.captured_queries
        if '"audit_auditevent"' in query["sql"]
    ]


# --- (b) verification -----------------------------------------------------------------------------


class ProfileWindowOver(Exception):
    pass


def bench_verify(profile_seconds: float) -> tuple[list[tuple[str, float, Any, str]], str]:
    """Seconds of verify_chain() and verify_audit() over the whole trail, in this process."""
    from django.db import connection

    from jitaccess.audit import verification

    results = []
    for name in ("verify_chain", "verify_audit"):
        function = getattr(verification, name, None)
        if function is None:
            continue
        connection.close()  # a fresh connection, as a management command would have
        with Busy() as busy:
            started = time.perf_counter()
            report = function()
            seconds = time.perf_counter() - started
        results.append((name, seconds, report, busy.line()))
    profile_text = ""
    if profile_seconds:

        def stop(signum: int, frame: Any) -> None:
            raise ProfileWindowOver

        connection.close()
        profiler = cProfile.Profile()
        previous = signal.signal(signal.SIGALRM, stop)
        signal.setitimer(signal.ITIMER_REAL, profile_seconds)
        profiler.enable()
        try:
            verification.verify_chain()
        except ProfileWindowOver:
            pass
        finally:
            profiler.disable()
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
            connection.close()  # the walk stopped inside a server-side cursor
        import io

        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out).strip_dirs()
        stats.sort_stats("tottime").print_stats(16)
        stats.sort_stats("cumulative").print_stats(12)
        profile_text = out.getvalue()
    return results, profile_text


# --- (c) export -----------------------------------------------------------------------------------


def proc_status(pid: int, key: str) -> int:
    """A kB figure from /proc/<pid>/status (VmRSS, VmHWM); 0 once the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass
class ExportFigures:
    label: str
    status: int = 0
    rows: int = 0
    bytes: int = 0
    seconds: float = 0.0
    first_byte: float = 0.0
    rss_before_kb: int = 0
    rss_peak_kb: int = 0
    hwm_after_kb: int = 0
    worker_cpu: float = 0.0
    expected: tuple[int, int] = (0, 0)
    error: str = ""
    worker_killed: bool = False


def bench_export(
    client: Client, server: Gunicorn, label: str, path: str, header_lines: int, window: tuple[datetime, datetime] | None
) -> ExportFigures:
    from jitaccess.audit.models import AuditEvent

    figures = ExportFigures(label)
    workers = server.workers()
    before_rss = {pid: proc_status(pid, "VmRSS") for pid in workers}
    before_cpu = {pid: proc_cpu(pid) for pid in workers}
    peak = dict(before_rss)
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.02):
            for pid in workers:
                peak[pid] = max(peak[pid], proc_status(pid, "VmRSS"))

    sampler = threading.Thread(target=sample, daemon=True)
    counted = {"bytes": 0, "lines": 0}

    def on_chunk(chunk: bytes) -> None:
        counted["bytes"] += len(chunk)
        counted["lines"] += chunk.count(b"\n")

    # since inclusive, until exclusive (API.md); the export ends at the head when it was recorded
    matching = AuditEvent.objects.filter(at__gte=window[0], at__lt=window[1]) if window else AuditEvent.objects
    low = matching.count()
    sampler.start()
    started = time.perf_counter()
    progress: dict[str, Any] = {}
    try:
        client.stream(path, on_chunk, progress)
    except (OSError, http.client.HTTPException) as exc:
        figures.error = f"{type(exc).__name__} after {time.perf_counter() - started:.1f} s: {exc}"
        client.conn.close()
    figures.seconds = time.perf_counter() - started
    figures.status, figures.first_byte = progress.get("status", 0), progress.get("first_byte", float("nan"))
    stop.set()
    sampler.join()
    high = matching.count()
    figures.expected = (low, high)
    figures.bytes = counted["bytes"]
    figures.rows = counted["lines"] - header_lines
    alive = set(server.workers())
    # The worker that served the export used the most CPU, unless one was killed meanwhile.
    cpu = {pid: proc_cpu(pid) - before_cpu[pid] if pid in alive else math.inf for pid in workers}
    serving = max(cpu, key=lambda pid: cpu[pid])
    figures.worker_cpu = cpu[serving] if serving in alive else float("nan")
    figures.worker_killed = serving not in alive
    figures.rss_before_kb = before_rss[serving]
    figures.rss_peak_kb = peak[serving]
    figures.hwm_after_kb = proc_status(serving, "VmHWM")
    return figures


# --- (d) the cost of an audit write ---------------------------------------------------------------


def bench_write(cast: Cast, samples: int) -> tuple[list[Timing], dict[str, float]]:
    """Interleaved rounds, all in this process on the bench database:

    - ``audit_record`` in a transaction, at the head of the trail (lock, head read, clock, hash,
      ORM insert), timed around the call and around the whole transaction (+ BEGIN/COMMIT);
    - a plain parameterised INSERT of a row of the same width into ``bench_plain_event`` (same
      columns, indexes, foreign key and rows as the trail; no chain), timed the same two ways;
    - ``request_submit``, a typical action, which includes one audit write;
    - the parts of the chained write on their own: the advisory lock statement, the ORM head
      read, ``clock.now()`` and ``event_hash``.
    """
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    from approvals.services import request_submit
    from jitaccess import clock
    from jitaccess.audit.chain import event_hash
    from jitaccess.audit.context import audit_context
    from jitaccess.audit.models import AuditEvent
    from jitaccess.audit.services import audit_record

    User = get_user_model()
    requester = User.objects.get(pk=cast.admins[0].id)
    service = User.objects.get(pk=cast.services[0].id)
    rows = {
        name: Timing(name)
        for name in [
            "audit_record (call)",
            "plain INSERT (call)",
            "transaction with audit_record",
            "transaction with plain INSERT",
            "request_submit (one audit write inside)",
            "  part: SELECT pg_advisory_xact_lock",
            "  part: head read (ORM)",
            "  part: clock.now()",
            "  part: event_hash",
        ]
    }
    data = {"keyring": "customer-keys", "via": "standing", "reason": "bench", "value_version": 1}
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT coalesce(max(seq), 0) FROM {PLAIN_TABLE}")
        plain_seq = cursor.fetchone()[0] + 10_000_000
    insert = (
        f"INSERT INTO {PLAIN_TABLE} (seq, at, actor_id, actor_name, action, target_type, target_id, grant_id,"
        " outcome, ip, correlation_id, data, prev_hash, hash) VALUES (%s, clock_timestamp(), %s, %s, %s, %s, %s,"
        " %s, %s, %s, %s, %s, %s, %s)"
    )
    now = clock.now()
    hash_fields = {
        "seq": 1,
        "at": now,
        "actor_id": service.pk,
        "actor_name": service.username,
        "action": "secret.revealed",
        "target_type": "secret",
        "target_id": "17",
        "grant_id": None,
        "outcome": "success",
        "ip": "10.30.0.1",
        "correlation_id": "c" * 32,
        "data": data,
        "prev_hash": "0" * 64,
    }

    def timed(name: str, function: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        result = function()
        rows[name].seconds.append(time.perf_counter() - started)
        return result

    def chained() -> None:
        started = time.perf_counter()
        with transaction.atomic():
            timed(
                "audit_record (call)",
                lambda: audit_record(
                    "secret.revealed", actor=service, target_type="secret", target_id=17, data=dict(data)
                ),
            )
        rows["transaction with audit_record"].seconds.append(time.perf_counter() - started)

    def plain(seq: int) -> None:
        values = [
            seq,
            service.pk,
            service.username,
            "secret.revealed",
            "secret",
            "17",
            None,
            "success",
            "10.30.0.1",
            f"{random.getrandbits(128):032x}",
            json.dumps(data),
            f"{random.getrandbits(256):064x}",
            f"{random.getrandbits(256):064x}",
        ]
        started = time.perf_counter()
        with transaction.atomic():

            def run() -> None:
                with connection.cursor() as cursor:
                    cursor.execute(insert, values)

            timed("plain INSERT (call)", run)
        rows["transaction with plain INSERT"].seconds.append(time.perf_counter() - started)

    def submit() -> None:
        timed(
            "request_submit (one audit write inside)",
            lambda: request_submit(
                requester=requester,
                entitlement=cast.entitlement,
                purpose="debugging",
                justification="Audit bench: the cost of an audited action",
                ticket="INC-4242",
                duration_seconds=3600,
            ),
        )

    def parts() -> None:
        with transaction.atomic():
            with connection.cursor() as cursor:
                timed(
                    "  part: SELECT pg_advisory_xact_lock", lambda: cursor.execute("SELECT pg_advisory_xact_lock(42)")
                )
            timed(
                "  part: head read (ORM)",
                lambda: AuditEvent.objects.order_by("-seq").values_list("seq", "hash").first(),
            )
            timed("  part: clock.now()", clock.now)
        timed("  part: event_hash", lambda: event_hash(**hash_fields))

    with audit_context(ip="127.0.0.1"):
        for _ in range(10):  # warm-up: caches, prepared connections
            chained()
            plain(plain_seq)
            plain_seq += 1
            submit()
            parts()
        for timing in rows.values():
            timing.seconds.clear()
        for _ in range(samples):
            chained()
            plain(plain_seq)
            plain_seq += 1
            submit()
            parts()
    p50 = {name: timing.ms(50) for name, timing in rows.items()}
    return list(rows.values()), p50


# --- the run --------------------------------------------------------------------------------------


def fmt_mb(kb: int) -> str:
    return f"{kb / 1024:.0f} MB"


def run(args: argparse.Namespace, temp_dir: Path) -> int:
    database, params = database_params(args.database_url)
    configure_environment(args, temp_dir, database)
    summary: list[tuple[str, bool]] = []
    problems = 0

    recorded = recorded_seed(database, params)
    wanted = {"events": args.events, "log_entries": args.log_entries, "seed": args.seed}
    reuse = args.reuse and recorded is not None and all(recorded[key] == value for key, value in wanted.items())
    if args.reuse and not reuse:
        print(f"--reuse: {database} does not hold this seed ({recorded or 'none'}); seeding it again")
    if not reuse:
        recreate_database(database, params)
        print(f"(re)created database {database}")

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.db.models import Count

    from jitaccess.audit.models import AuditEvent

    started = time.monotonic()
    call_command("migrate", verbosity=0, interactive=False)
    print(f"migrate: {time.monotonic() - started:.1f} s")
    from auditlog.context import disable_auditlog

    # Without django-auditlog for the bench's own users, groups and entitlement: each of those
    # edits would otherwise append a config.changed event at today's date ahead of the seeded
    # 90 days (a signal on LogEntry), and the trail's "at" would no longer grow with "seq".
    with disable_auditlog():
        cast = bench_cast()

    if reuse:
        print(f"reusing the seed of {recorded['seeded_at']:%Y-%m-%d %H:%M} UTC ({args.events:,} events)")
        import psycopg

        with psycopg.connect(dbname=database, autocommit=True, **params) as conn:
            if not plain_table_matches(conn):
                started = time.monotonic()
                create_plain_table(conn)
                print(f"  {PLAIN_TABLE} re-made (the trail has new indexes): {time.monotonic() - started:.1f} s")
    else:
        print(f"seeding {args.events:,} audit events and {args.log_entries:,} LogEntry rows over {SEED_DAYS} days")
        started = time.monotonic()
        timings = seed(args, database, params, cast)
        total = time.monotonic() - started
        from jitaccess.audit.checkpoints import checkpoint_write

        checkpoint_write()  # a signed checkpoint of the seeded head, so verify_audit has an anchor
        with connection.cursor() as cursor:
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {META_TABLE} (events bigint, log_entries bigint, seed int,"
                " seeded_at timestamptz DEFAULT now())"
            )
            cursor.execute(
                f"INSERT INTO {META_TABLE} (events, log_entries, seed) VALUES (%s, %s, %s)",
                [args.events, args.log_entries, args.seed],
            )
        print("seeding took " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in timings.items()))
        print(f"seeding total: {total:.1f} s")

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM audit_auditevent")
        (events_now,) = cursor.fetchone()
        cursor.execute("SELECT count(*) FROM auditlog_logentry")
        (entries_now,) = cursor.fetchone()
        cursor.execute(
            "SELECT pg_size_pretty(pg_total_relation_size('audit_auditevent')),"
            " pg_size_pretty(pg_total_relation_size('auditlog_logentry'))"
        )
        sizes = cursor.fetchone()
    print(f"trail: {events_now:,} events ({sizes[0]} with indexes); django-auditlog: {entries_now:,} rows ({sizes[1]})")
    counts = Counter(dict(AuditEvent.objects.values_list("action").annotate(n=Count("id")).order_by()))
    print(
        "  most common actions: "
        + ", ".join(f"{action} {number / events_now:.1%}" for action, number in counts.most_common(6))
        + f"; key.rotated {counts.get('key.rotated', 0)}"
    )

    print(f"load average before measuring: {' '.join(f'{value:.2f}' for value in os.getloadavg())}")
    # (b) first: it needs no server, and it checks that the seed is a valid chain.
    if not args.skip_verify:
        print("\n(b) verification, in-process over the whole trail")
        results, profile_text = bench_verify(args.profile_verify)
        for name, seconds, report, busy in results:
            ok = bool(getattr(report, "ok", False))
            checked = getattr(report, "checked", 0)
            rate = checked / seconds if seconds else 0
            per_million = seconds / max(checked, 1) * 1_000_000
            print(
                f"  {name}(): {seconds:.1f} s for {checked:,} events, {rate:,.0f} events/s"
                f" ({per_million:.1f} s per 1,000,000); ok={ok} {getattr(report, 'reason', '') or ''}"
            )
            print(f"    {busy}")
            if not ok:
                problems += 1
            summary.append(
                (
                    f"(b) {name}: 1,000,000 events in <= {TARGET_VERIFY_S_PER_MILLION:.0f} s"
                    f" ({per_million:.1f} s per million)",
                    per_million <= TARGET_VERIFY_S_PER_MILLION,
                )
            )
            summary.append((f"(b) {name}: the chain is valid", ok))
        if profile_text:
            print(
                f"  cProfile of the first {args.profile_verify:.0f} s of verify_chain() (one process), by own time,"
                " then by cumulative time:"
            )
            print("\n".join("    " + line for line in profile_text.strip().splitlines()))

    if not args.skip_http:
        problems += run_server_part(args, temp_dir, cast, summary)

    if not args.skip_write:
        print("\n(d) the cost of an audit write, in-process, interleaved rounds")
        print(
            f"    {args.write_samples} rounds of: audit_record in a transaction at the head of the"
            f" {AuditEvent.objects.count():,}-event trail; the same row as a plain INSERT into"
        )
        print(
            f"    {PLAIN_TABLE} (same columns, indexes, FK and rows, no chain); request_submit; the parts of the"
            " chained write"
        )
        with Busy() as busy:
            rows, p50 = bench_write(cast, args.write_samples)
        print_timings(rows, unit="")
        print(f"  {busy.line()}")
        added = p50["audit_record (call)"] - p50["plain INSERT (call)"]
        print(
            f"  audit_record / plain INSERT: {p50['audit_record (call)'] / p50['plain INSERT (call)']:.1f}x"
            f" (p50), {added:.2f} ms more per write;"
            f" with BEGIN/COMMIT {p50['transaction with audit_record'] / p50['transaction with plain INSERT']:.1f}x"
        )
        submit = p50["request_submit (one audit write inside)"]
        print(
            f"  share of request_submit (p50 {submit:.2f} ms) spent in audit_record:"
            f" {p50['audit_record (call)'] / submit:.0%}; the chain's extra over a plain row: {added / submit:.0%}"
        )
        from jitaccess.celery import app

        app.control.purge()  # anything the services enqueued on Redis db 11; nothing consumes it

    print("\nsummary")
    for text, ok in summary:
        print(f"  {verdict(ok)}  {text}")
    print(f"exit status {1 if problems else 0}: {problems} problem(s) (wrong behaviour, not missed targets)")
    return 1 if problems else 0


def run_server_part(args: argparse.Namespace, temp_dir: Path, cast: Cast, summary: list[tuple[str, bool]]) -> int:
    """(a) and (c): one gunicorn on the bench database."""
    from django.contrib.contenttypes.models import ContentType

    from keys.models import KeyRing

    problems = 0
    facts = trail_facts(cast)
    from django.core.management import call_command

    started = time.monotonic()
    # The admin's pages need the manifest of the collected static files, as the image has it.
    call_command("collectstatic", interactive=False, verbosity=0)
    print(f"\ncollectstatic into the temporary JIT_VAR_DIR: {time.monotonic() - started:.1f} s")
    server = Gunicorn(
        temp_dir / "gunicorn.log",
        workers=args.workers,
        worker_class=args.worker_class,
        threads=args.threads,
        timeout=args.timeout,
    )
    try:
        ready = server.start()
        print(
            f"gunicorn -w {args.workers} -k {args.worker_class}"
            + (f" --threads {args.threads}" if args.worker_class == "gthread" else "")
            + f" --timeout {args.timeout} on 127.0.0.1:{server.port},"
            f" ready after {ready:.1f} s; one client, sequential requests"
        )
        client = Client(server.port)
        body = json.dumps({"username": cast.auditor.username, "password": BENCH_PASSWORD}).encode()
        response = client.request(
            "POST", "/api/v1/auth/token/", body=body, headers={"Content-Type": "application/json"}
        )
        if response.status != 201:
            raise RuntimeError(f"auditor token: HTTP {response.status} {response.body[:200]!r}")
        client.token = response.json()["token"]
        probe = client.get("/api/v1/audit/events/")
        if probe.status == 404:
            print("(a)/(c) SKIPPED: GET /api/v1/audit/events/ answers 404 (the audit API is not there yet)")
            summary.append(("(a)/(c) the audit API exists", False))
            return 1

        print(
            f"\n(a) GET /api/v1/audit/events/ as {cast.auditor.username} (token), first page at the default page size;"
            f" {args.requests} timed requests per case after 2 untimed"
        )
        with Busy(server) as busy:
            rows = bench_list(client, facts, args.requests, args.pages)
        print_timings(rows)
        print(f"  {busy.line()}")
        problems += sum(sum(row.errors.values()) for row in rows)
        events = [row for row in rows if not row.label.startswith("(ref.)")]
        worst = max(events, key=lambda row: row.ms(50))
        summary.append(
            (
                f"(a) events list p50 <= {TARGET_LIST_P50_MS:.0f} ms for every filter (worst: {worst.label},"
                f" p50 {worst.ms(50):.1f} ms, p99 {worst.ms(99):.1f} ms)",
                all(row.ms(50) <= TARGET_LIST_P50_MS for row in events),
            )
        )
        slow = sorted(events, key=lambda row: row.ms(50), reverse=True)[:2]
        for row in slow:
            case = next((c for c in list_cases(facts) if row.label.startswith(c.label)), None)
            if case is None:
                continue
            queries = captured_list_sql(case.path(), client.token)
            if not queries:
                continue
            sql, _ = max(queries, key=lambda query: query[1])
            shown = re.sub(r"^SELECT .*? FROM", "SELECT … FROM", sql, count=1)
            print(f"\n  slowest statement of '{row.label}' (EXPLAIN ANALYZE, in-process):\n    {shown}")
            print("\n".join("    " + line for line in explain(sql).splitlines()))

        if not args.skip_admin:
            admin_client = Client(server.port)
            admin_login(admin_client, cast.root.username)
            keyring_ct = ContentType.objects.get_for_model(KeyRing).pk
            pages = [
                ("auditlog LogEntry changelist", "/admin/auditlog/logentry/"),
                (
                    f"  filtered: resource_type={keyring_ct} (KeyRing)",
                    f"/admin/auditlog/logentry/?resource_type={keyring_ct}",
                ),
                ("  filtered: action=update", "/admin/auditlog/logentry/?action__exact=1"),
                ("(ref.) AuditEvent changelist", "/admin/audit/auditevent/"),
            ]
            print(
                f"\n(a) Django admin as {cast.root.username} (session), django-auditlog's LogEntryAdmin as shipped"
                f" (show_full_result_count on, date_hierarchy, its filters); {args.admin_requests} timed after 1"
            )
            with Busy(server) as busy:
                admin_rows = bench_admin(admin_client, args.admin_requests, pages)
            print_timings(admin_rows)
            print(f"  {busy.line()}")
            queries = captured_admin_sql(pages[0][1], cast.root.username)
            print(
                f"  {pages[0][1]} in-process: {len(queries)} statements, {sum(t for _, t in queries) * 1000:.0f} ms"
                " in the database; the slowest:"
            )
            for sql, seconds in sorted(queries, key=lambda query: -query[1])[:4]:
                print(f"    {seconds * 1000:7.1f} ms  {sql[:150]}{'…' if len(sql) > 150 else ''}")
            problems += sum(sum(row.errors.values()) for row in admin_rows)
            api_first = rows[0]
            summary.append(
                (
                    f"(a) for comparison: auditlog changelist p50 {admin_rows[0].ms(50):.0f} ms vs API first page"
                    f" p50 {api_first.ms(50):.1f} ms",
                    True,
                )
            )

        if not args.skip_export:
            week = {"since": iso(facts["week"][0]), "until": iso(facts["week"][1])}
            print(
                "\n(c) GET /api/v1/audit/export/, streamed to this process (bytes and lines counted, nothing kept);"
                " RSS of the serving worker sampled every 20 ms"
            )
            print(
                f"  {'':<26} {'status':>6} {'rows':>10} {'MB':>7} {'s':>6} {'rows/s':>8} {'MB/s':>6}"
                f" {'1st byte':>8} {'RSS before':>10} {'RSS peak':>9} {'VmHWM':>7} {'CPU s':>6}"
            )
            export_ok = True
            for label, fmt, extra in [
                ("whole trail, jsonl", "jsonl", {}),
                ("whole trail, csv", "csv", {}),
                ("1 week, jsonl", "jsonl", week),
                ("1 week, csv", "csv", week),
            ]:
                path = f"/api/v1/audit/export/?{urlencode({'format': fmt, **extra})}"
                with Busy(server) as busy:
                    figures = bench_export(
                        client,
                        server,
                        label,
                        path,
                        header_lines=1 if fmt == "csv" else 0,
                        window=facts["week"] if extra else None,
                    )
                rate = figures.rows / figures.seconds if figures.seconds else 0
                print(
                    f"  {label:<26} {figures.status:>6} {figures.rows:>10,} {figures.bytes / 1e6:>7.1f}"
                    f" {figures.seconds:>6.1f} {rate:>8,.0f} {figures.bytes / 1e6 / figures.seconds:>6.1f}"
                    f" {figures.first_byte:>8.2f} {fmt_mb(figures.rss_before_kb):>10} {fmt_mb(figures.rss_peak_kb):>9}"
                    f" {fmt_mb(figures.hwm_after_kb) if figures.hwm_after_kb else 'gone':>7} {figures.worker_cpu:>6.1f}"
                )
                print(f"    {busy.line()}")
                low, high = figures.expected
                if figures.error or figures.status != 200 or not low <= figures.rows <= high:
                    problems += 1
                    export_ok = False
                    print(
                        f"    WRONG: HTTP {figures.status}, {figures.error or 'complete'}; {figures.rows:,} rows where"
                        f" the database held {low:,}..{high:,} matching events"
                    )
                    log = server.log_path.read_text(errors="replace") if server.log_path.exists() else ""
                    killed = [line for line in log.splitlines() if "WORKER TIMEOUT" in line]
                    if figures.worker_killed or killed:
                        print(
                            f"    the serving worker was killed by gunicorn's --timeout {args.timeout} s"
                            f" ({killed[-1].strip() if killed else 'worker gone'}): the client got HTTP"
                            f" {figures.status} and a truncated file"
                        )
                    else:
                        print(server.log_tail(8))
            summary.append(
                (
                    f"(c) every export complete, its rows matching the database (gunicorn -k {args.worker_class}"
                    f" --timeout {args.timeout})",
                    export_ok,
                )
            )
    except Exception:
        print(server.log_tail(), file=sys.stderr)
        raise
    finally:
        server.stop()
    return problems


def main() -> int:
    return run_in_temp_dir(run, parse_args(), prefix="jit-audit-bench-", what="gunicorn")


if __name__ == "__main__":
    sys.exit(main())
