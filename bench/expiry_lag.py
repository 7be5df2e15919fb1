"""Expiry lag: how long after ``expires_at`` a grant is really flipped while a worker runs.

Issues N short grants through the real services, lets a real Celery worker (and beat) expire
them, and reports, per grant, ``lag = grant.expired audit event "at" - grant.expires_at``.
The state, the credential and the audit event are written in one transaction, so the audit
timestamp stands for all three. Target (DESIGN.md §8): p99 <= 1 s.

    .venv/bin/python bench/expiry_lag.py --grants 200 --spread 20
    .venv/bin/python bench/expiry_lag.py --grants 200 --spread 20 --embedded-broker

Uses the PostgreSQL database ``jit_bench`` and Redis database 13 unless DATABASE_URL / REDIS_URL
say otherwise; never run it against a broker that a real worker consumes from. Bench rows stay in
the database (audit events are append-only); each run reports only on the grants it created.
See docs/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from temp_run import run_in_temp_dir  # bench/ is on sys.path when a bench runs as a script

REPO_ROOT = Path(__file__).resolve().parent.parent
TARGET_P99_MS = 1000.0
# Issue-time enqueueing stamps expiry_enqueued_at in the issuing transaction; anything later
# came from the beat scheduler.
ISSUE_ENQUEUE_SLACK = timedelta(seconds=1)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grants", type=int, default=200, help="grants to issue (default 200)")
    parser.add_argument(
        "--spread", type=int, default=20, help="durations spread over [2, 2+spread] seconds (default 20)"
    )
    parser.add_argument("--seed", type=int, default=1, help="shuffles the durations reproducibly")
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument(
        "--with-beat",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run beat (scheduler and sweep); default on",
    )
    parser.add_argument(
        "--embedded-broker",
        action="store_true",
        help="use the filesystem broker in a temporary directory instead of Redis",
    )
    parser.add_argument(
        "--timeout", type=float, default=90.0, help="seconds to wait past the last expires_at (default 90)"
    )
    parser.add_argument("--keep-temp", action="store_true", help="keep the worker logs and broker files")
    args = parser.parse_args(argv)
    if args.grants < 1 or args.spread < 0 or args.concurrency < 1:
        parser.error("--grants and --concurrency must be positive, --spread non-negative")
    return args


def configure_environment(args: argparse.Namespace, temp_dir: Path) -> bool:
    """Bench defaults that a caller's environment may override. Returns True for the embedded broker.

    The worker and beat subprocesses inherit this environment, so all three agree on the
    database, the broker and the expiry knobs.
    """
    os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/jit_bench")
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/13")
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only-secret-key-not-for-any-deployment-0123456789")
    os.environ.setdefault("DJANGO_DEBUG", "false")
    # Bench-only keys (base64 of 32 bytes of 0x11 and 0x22): outside DEBUG both must be given.
    os.environ.setdefault("JIT_ROOT_KEY", "ERERERERERERERERERERERERERERERERERERERERERE=")
    os.environ.setdefault("JIT_AUDIT_SIGNING_KEY", "IiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiI=")
    os.environ.setdefault("JIT_MIN_GRANT_SECONDS", "1")
    # The scheduler only matters for grants beyond the horizon; a short period keeps their lag
    # from being dominated by how rarely it runs.
    os.environ.setdefault("JIT_EXPIRY_SCHEDULE_SECONDS", "2")
    embedded = args.embedded_broker or os.environ["REDIS_URL"] == ""
    if embedded:
        os.environ["REDIS_URL"] = ""
    # Always a private var dir: the beat schedule file and the filesystem broker must not be
    # shared with a development worker started from this checkout. Nothing in the app creates
    # the directory, and beat cannot open its schedule file without it.
    var_dir = temp_dir / "var"
    var_dir.mkdir()
    os.environ["JIT_VAR_DIR"] = str(var_dir)
    os.environ.setdefault("JIT_AUDIT_SINK", str(var_dir / "audit-checkpoints.jsonl"))
    os.environ["DJANGO_SETTINGS_MODULE"] = "jitaccess.settings"
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    os.environ["PYTHONUNBUFFERED"] = "1"
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    return embedded


@dataclass
class Cast:
    requester: Any
    approver_1: Any
    approver_2: Any
    entitlement: Any


def bench_cast(max_duration_seconds: int) -> Cast:
    """The bench's own users, groups and two-stage entitlement; idempotent across runs."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from approvals.models import ApprovalStage, Entitlement, Purpose, SecurityGroup

    def user_in(username: str, group_name: str) -> Any:
        user, created = get_user_model().objects.get_or_create(username=username)
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        user.groups.set([Group.objects.get_or_create(name=group_name)[0]])
        return user

    requester = user_in("bench-requester", "bench-requesters")
    approver_1 = user_in("bench-approver-1", "bench-approvers-1")
    approver_2 = user_in("bench-approver-2", "bench-approvers-2")
    security_group, _ = SecurityGroup.objects.get_or_create(
        name="bench-expiry", defaults={"description": "Expiry-lag benchmark; grants nothing real."}
    )
    entitlement, _ = Entitlement.objects.update_or_create(
        slug="bench-expiry",
        defaults={
            "name": "Expiry-lag benchmark",
            "security_group": security_group,
            "requester_group": Group.objects.get(name="bench-requesters"),
            "purposes": list(Purpose.values),
            "requires_ticket": True,
            "default_duration_seconds": 60,
            "max_duration_seconds": max(8 * 3600, max_duration_seconds),
            "pending_ttl_seconds": 24 * 3600,
            "is_active": True,
        },
    )
    for order, group_name in [(1, "bench-approvers-1"), (2, "bench-approvers-2")]:
        ApprovalStage.objects.update_or_create(
            entitlement=entitlement,
            order=order,
            defaults={
                "name": f"Bench stage {order}",
                "approver_group": Group.objects.get(name=group_name),
                "required_approvals": 1,
            },
        )
    entitlement.stages.exclude(order__in=[1, 2]).delete()
    return Cast(requester, approver_1, approver_2, entitlement)


class CeleryProcesses:
    """Worker (and beat) subprocesses, always stopped again, whatever happens to the bench."""

    def __init__(self, log_dir: Path, *, concurrency: int, with_beat: bool) -> None:
        self.log_dir = log_dir
        self.concurrency = concurrency
        self.with_beat = with_beat
        self.hostname = f"bench-expiry-{os.getpid()}@{socket.gethostname()}"
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def _start(self, name: str, *celery_args: str) -> None:
        log = (self.log_dir / f"{name}.log").open("wb")
        # A session of their own: a Ctrl-C in the terminal reaches only the bench, which then
        # stops the worker cleanly instead of racing its own signal handling.
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "jitaccess", *celery_args],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def start(self) -> None:
        self._start(
            "worker",
            "worker",
            "--pool=prefork",
            f"--concurrency={self.concurrency}",
            "--loglevel=warning",
            f"--hostname={self.hostname}",
            "--without-gossip",
            "--without-mingle",
        )
        if self.with_beat:
            self._start("beat", "beat", "--loglevel=warning")

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise RuntimeError(
                    f"celery {name} exited with code {process.returncode}; see {self.log_dir}/{name}.log"
                )

    def wait_ready(self, timeout: float) -> float:
        """Seconds until the worker answered a ping: only then are its queues consumed."""
        from jitaccess.celery import app

        started = time.monotonic()
        while time.monotonic() - started < timeout:
            self.check_alive()
            if app.control.ping(destination=[self.hostname], timeout=1.0):
                return time.monotonic() - started
        raise RuntimeError(f"the worker did not answer a ping within {timeout:.0f} s; see {self.log_dir}/worker.log")

    def stop(self) -> None:
        # SIGTERM is Celery's warm shutdown; unacknowledged ETA messages go back to the broker.
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                # The session id is the child's pid, so this reaches its pool processes too.
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def log_tail(self, lines: int = 20) -> str:
        parts = []
        for name in self.processes:
            text = (self.log_dir / f"{name}.log").read_text(errors="replace").splitlines()
            parts.append(f"--- {name}.log (last {lines} lines) ---\n" + "\n".join(text[-lines:]))
        return "\n".join(parts)


def spread_durations(count: int, spread: int, seed: int) -> list[int]:
    """Integer durations (the model's unit) evenly over [2, 2+spread], in shuffled order so
    expiries interleave with issuing instead of following it."""
    durations = [2 + (index * (spread + 1)) // count for index in range(count)]
    random.Random(seed).shuffle(durations)
    return durations


def issue_grants(cast: Cast, durations: list[int], run_tag: str) -> list[int]:
    """One request per grant, approved by both stages, with its credential minted, so that the
    expiry also has a live credential to revoke."""
    from approvals import services
    from approvals.models import Grant

    grant_ids = []
    for index, duration in enumerate(durations):
        request = services.request_submit(
            requester=cast.requester,
            entitlement=cast.entitlement,
            purpose="debugging",
            justification="Expiry-lag benchmark",
            ticket=f"{run_tag}-{index}",
            duration_seconds=duration,
        )
        services.request_decide(request, approver=cast.approver_1, decision="approve")
        services.request_decide(request, approver=cast.approver_2, decision="approve")
        grant = Grant.objects.get(request=request)
        services.grant_credential_mint(grant, acting_user=cast.requester)
        grant_ids.append(grant.pk)
    return grant_ids


def wait_until_expired(grant_ids: list[int], deadline: float, processes: CeleryProcesses) -> None:
    """Poll until no grant of this run is active or the deadline passes."""
    from approvals.models import Grant, GrantState

    while Grant.objects.filter(pk__in=grant_ids, state=GrantState.ACTIVE).exists():
        if time.monotonic() >= deadline:
            return
        processes.check_alive()
        time.sleep(0.25)


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile: an observed value, never an interpolation."""
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass
class Report:
    issued: int
    lags_ms: list[float] = field(default_factory=list)
    credential_lags_ms: list[float] = field(default_factory=list)
    by_single: int = 0
    by_batch: int = 0
    enqueued_at_issue: int = 0
    enqueued_by_scheduler: int = 0
    never_enqueued: int = 0
    credentials_live: int = 0
    still_active: int = 0


def build_report(grant_ids: list[int]) -> Report:
    from approvals.models import Grant, GrantCredential, GrantState
    from jitaccess.audit.models import AuditEvent

    report = Report(issued=len(grant_ids))
    grants = {grant.pk: grant for grant in Grant.objects.filter(pk__in=grant_ids)}
    events = list(
        AuditEvent.objects.filter(action="grant.expired", grant_id__in=grant_ids).values(
            "grant_id", "at", "correlation_id"
        )
    )
    # Each Celery task runs in its own audit context, so the precise task writes one grant.expired
    # per correlation id, while a sweep writes all the grants of its pass under one id. A sweep
    # that found a single grant looks like a task; its lag (a sweep period) gives it away.
    per_correlation = Counter(event["correlation_id"] for event in events)
    for event in events:
        grant = grants[event["grant_id"]]
        report.lags_ms.append((event["at"] - grant.expires_at).total_seconds() * 1000)
        if per_correlation[event["correlation_id"]] == 1:
            report.by_single += 1
        else:
            report.by_batch += 1
    for grant in grants.values():
        if grant.expiry_enqueued_at is None:
            report.never_enqueued += 1
        elif grant.expiry_enqueued_at - grant.starts_at <= ISSUE_ENQUEUE_SLACK:
            report.enqueued_at_issue += 1
        else:
            report.enqueued_by_scheduler += 1
        if grant.state == GrantState.ACTIVE:
            report.still_active += 1
    for credential in GrantCredential.objects.filter(grant_id__in=grant_ids).select_related("grant"):
        if credential.revoked_at is None:
            report.credentials_live += 1
        else:
            report.credential_lags_ms.append(
                (credential.revoked_at - credential.grant.expires_at).total_seconds() * 1000
            )
    report.lags_ms.sort()
    report.credential_lags_ms.sort()
    return report


def print_report(report: Report, *, broker: str, issue_seconds: float) -> None:
    print(f"\nexpiry lag = grant.expired audit 'at' - expires_at   (broker: {broker})")
    print(f"  issued {report.issued} grants in {issue_seconds:.1f} s ({report.issued / issue_seconds:.0f}/s)")
    if report.lags_ms:
        figures = [percentile(report.lags_ms, p) for p in (50, 90, 99)] + [report.lags_ms[-1]]
        print(f"  {'expired':>8} {'p50 ms':>9} {'p90 ms':>9} {'p99 ms':>9} {'max ms':>9}")
        print(f"  {len(report.lags_ms):>8} " + " ".join(f"{value:>9.1f}" for value in figures))
        if report.credential_lags_ms:
            print(
                f"  credential revoked_at - expires_at: p99 {percentile(report.credential_lags_ms, 99):.1f} ms,"
                f" max {report.credential_lags_ms[-1]:.1f} ms"
            )
        # A grant that never expired has no lag to rank, but it surely misses the target.
        verdict = "met" if figures[2] <= TARGET_P99_MS and not report.still_active else "MISSED"
        print(f"  target p99 <= {TARGET_P99_MS:.0f} ms: {verdict}")
    print(
        f"  flipped alone (precise task): {report.by_single}; in a batch (sweep): {report.by_batch}"
        f"\n  enqueued at issue: {report.enqueued_at_issue}; by the scheduler: {report.enqueued_by_scheduler};"
        f" never: {report.never_enqueued}"
    )
    if report.credentials_live:
        print(f"  credentials still live: {report.credentials_live}")
    if report.still_active:
        print(f"  STILL ACTIVE: {report.still_active} grants never expired")


def run(args: argparse.Namespace, temp_dir: Path) -> int:
    embedded = configure_environment(args, temp_dir)

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from kombu.utils.url import maybe_sanitize_url

    from approvals.models import Grant, GrantState
    from jitaccess import clock

    if settings.JIT_MIN_GRANT_SECONDS > 2:
        raise SystemExit(
            f"JIT_MIN_GRANT_SECONDS={settings.JIT_MIN_GRANT_SECONDS} refuses 2 s grants; unset it or use 1"
        )
    call_command("migrate", verbosity=0, interactive=False)
    cast = bench_cast(max_duration_seconds=2 + args.spread)
    leftovers = Grant.objects.filter(entitlement=cast.entitlement, state=GrantState.ACTIVE).count()
    if leftovers:
        print(f"note: {leftovers} active bench grants from an earlier run; the sweep will expire them")

    broker = "filesystem (embedded)" if embedded else maybe_sanitize_url(settings.CELERY_BROKER_URL)
    print(
        f"{settings.DATABASES['default']['NAME']} on {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]},"
        f" broker {broker}; horizon {settings.JIT_EXPIRY_HORIZON_SECONDS} s,"
        f" schedule every {settings.JIT_EXPIRY_SCHEDULE_SECONDS} s, sweep every {settings.JIT_EXPIRY_SWEEP_SECONDS} s"
    )
    processes = CeleryProcesses(temp_dir, concurrency=args.concurrency, with_beat=args.with_beat)
    try:
        processes.start()
        ready_after = processes.wait_ready(timeout=60)
        print(
            f"worker {processes.hostname} ready after {ready_after:.1f} s" + (" (with beat)" if args.with_beat else "")
        )

        durations = spread_durations(args.grants, args.spread, args.seed)
        started = time.monotonic()
        grant_ids = issue_grants(cast, durations, run_tag=f"BENCH-{int(time.time())}")
        issue_seconds = time.monotonic() - started

        last_expiry: datetime = max(Grant.objects.filter(pk__in=grant_ids).values_list("expires_at", flat=True))
        until_last = max(0.0, (last_expiry - clock.now()).total_seconds())
        print(f"waiting up to {until_last + args.timeout:.0f} s for {len(grant_ids)} grants to expire")
        wait_until_expired(grant_ids, time.monotonic() + until_last + args.timeout, processes)
        report = build_report(grant_ids)
    except Exception:
        if processes.processes:
            print(processes.log_tail(), file=sys.stderr)
        raise
    finally:
        processes.stop()
    print_report(report, broker=broker, issue_seconds=issue_seconds)
    return 1 if report.still_active else 0


def main() -> int:
    return run_in_temp_dir(run, parse_args(), prefix="jit-expiry-bench-", what="worker")


if __name__ == "__main__":
    sys.exit(main())
