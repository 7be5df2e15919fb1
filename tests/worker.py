"""A real Celery worker (and optionally beat) in a subprocess, against the test database."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.db import connection

from jitaccess.celery import app

ROOT = Path(__file__).resolve().parent.parent


def _test_database_url() -> str:
    s = connection.settings_dict
    auth = s["USER"] or "postgres"
    if s["PASSWORD"]:
        auth += f":{s['PASSWORD']}"
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


@contextmanager
def celery_processes(
    tmp_path: Path, *, beat: bool = False, purge: bool = True, extra_env: dict[str, str] | None = None
) -> Iterator[None]:
    """Start a worker (and beat) for the duration of the block.

    ``purge`` empties the broker first, so tasks left over from earlier tests do not run against
    this one's database; a test of delivery after an outage passes ``purge=False`` to keep the
    tasks it queued while no worker ran.
    """
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": _test_database_url(),
        "JIT_VAR_DIR": str(tmp_path),
        **(extra_env or {}),
    }
    hostname = f"test-{os.getpid()}-{time.monotonic_ns()}@localhost"
    cmd = [sys.executable, "-m", "celery", "-A", "jitaccess", "worker", "--pool=solo", "-l", "warning", "-n", hostname]
    if beat:
        cmd.append("--beat")
    if purge:
        app.control.purge()
    process = subprocess.Popen(cmd, cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 30
        while not app.control.ping(destination=[hostname], timeout=0.5):
            assert process.poll() is None, "the worker exited during start-up"
            assert time.monotonic() < deadline, "the worker did not answer a ping within 30 s"
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for(predicate, *, timeout: float, interval: float = 0.1) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
