"""What one API request costs the web process, measured so that other work on the machine does not
change the figure.

In-process, through Django's test client (the whole middleware and DRF stack, without gunicorn and
HTTP), for a reveal (``POST /api/v1/secrets/{id}/reveal/`` by a standing service account with a
personal token, audit write included), the cheapest authenticated read (``GET /api/v1/entitlements/``
as the same account) and ``GET /healthz``: the SQL statements, the Redis commands and the CPU
instructions per request. Instructions are counted by valgrind's callgrind, exactly, whatever else
the cores are doing; counting is switched on only around the measured requests (callgrind_control).
The CPU milliseconds printed next to them are ``time.process_time`` and do depend on the load.

    .venv/bin/python bench/request_cost.py                    # statements, Redis commands, CPU ms
    .venv/bin/python bench/request_cost.py --instructions     # also instructions (runs under valgrind)

Database, Redis and set-up as bench/keys.py (``jit_bench_keys``, Redis database 11, its bench-only
keys and the same security group, service account and secrets). Under valgrind the run takes a few
minutes. See docs/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from temp_run import run_in_temp_dir  # bench/ is on sys.path when a bench runs as a script

CALLGRIND_OUT = "JIT_BENCH_CALLGRIND_OUT"  # set for the copy of this script that runs under valgrind


def bench_keys() -> Any:
    """bench/keys.py, for its set-up. Under another module name: as ``keys`` it would shadow the app."""
    spec = importlib.util.spec_from_file_location("bench_keys", Path(__file__).with_name("keys.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_keys"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=30, help="measured requests per kind (default 30)")
    parser.add_argument("--warmup", type=int, default=10, help="unmeasured requests per kind first (default 10)")
    parser.add_argument("--instructions", action="store_true", help="count CPU instructions under callgrind")
    parser.add_argument("--keep-temp", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.warmup < 0:
        parser.error("--requests must be positive, --warmup non-negative")
    return args


def callgrind_control(*arguments: str) -> None:
    """Ask callgrind to do something to this very process. It reads such requests only while the
    process runs, so wait by polling rather than blocking in a system call."""
    helper = subprocess.Popen(
        ["callgrind_control", *arguments, str(os.getpid())], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    while helper.poll() is None:
        time.sleep(0.02)


def dumped_instructions(out: Path, dump_number: int) -> int:
    """Instructions in callgrind's dump number ``dump_number`` (its ``summary:`` line)."""
    for line in Path(f"{out}.{dump_number}").read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise RuntimeError(f"no summary in {out}.{dump_number}")


class RedisCommands:
    """Counts the commands sent to Redis (every connection of this process)."""

    def __init__(self) -> None:
        from redis.connection import AbstractConnection

        self.count = 0
        original = AbstractConnection.send_command

        def counting(connection: Any, *args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return original(connection, *args, **kwargs)

        AbstractConnection.send_command = counting


def measure(args: argparse.Namespace, temp_dir: Path) -> int:
    setup = bench_keys()
    setup.configure_environment(temp_dir)
    database = setup.ensure_database(os.environ["DATABASE_URL"])
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from keys.services import keyring_create

    call_command("migrate", verbosity=0, interactive=False)
    run_tag = time.strftime("%Y%m%d%H%M%S") + "-cost"
    cast = setup.bench_cast(1)
    ring = keyring_create(name=f"{setup.RING_PREFIX}{run_tag}", security_group=cast.group, acting_user=None)
    targets = setup.create_secrets(cast, ring, 20, run_tag)
    client = Client(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"Bearer {cast.tokens[0]}")
    redis_commands = RedisCommands()

    def reveal(index: int) -> Any:
        secret_id, value = targets[index % len(targets)]
        response = client.post(
            f"/api/v1/secrets/{secret_id}/reveal/", setup.REVEAL_BODY, content_type="application/json"
        )
        assert response.status_code == 200 and response.json()["value"] == value, response.content
        return response

    def read(index: int) -> Any:
        response = client.get("/api/v1/entitlements/")
        assert response.status_code == 200, response.content
        return response

    def health(index: int) -> Any:
        return client.get("/healthz")

    kinds: list[tuple[str, Callable[[int], Any]]] = [
        ("POST /api/v1/secrets/{id}/reveal/", reveal),
        ("GET /api/v1/entitlements/", read),
        ("GET /healthz", health),
    ]
    callgrind_out = os.environ.get(CALLGRIND_OUT)
    print(f"in-process requests on {database}; {args.warmup} unmeasured, then {args.requests} measured per kind")
    # Under valgrind the CPU time is valgrind's; the instructions are the figure then.
    print(f"  {'request':<36} {'statements':>10} {'redis':>6} {'instructions' if callgrind_out else 'CPU ms':>12}")
    reveal_statements: list[str] = []
    for dump_number, (label, request) in enumerate(kinds, 1):
        for index in range(args.warmup):
            request(index)
        commands_before = redis_commands.count
        with CaptureQueriesContext(connection) as captured:
            request(0)
        statements = [query["sql"] for query in captured.captured_queries]
        commands = redis_commands.count - commands_before
        if request is reveal:
            reveal_statements = statements
        if callgrind_out:
            callgrind_control("--instr=on")
            callgrind_control("--zero")
        started = time.process_time()
        for index in range(args.requests):
            request(index)
        figure = f"{(time.process_time() - started) / args.requests * 1000:.2f}"
        if callgrind_out:
            callgrind_control(f"--dump=request-{dump_number}")
            callgrind_control("--instr=off")
            figure = f"{dumped_instructions(Path(callgrind_out), dump_number) / args.requests / 1e6:.2f} M"
        print(f"  {label:<36} {len(statements):>10} {commands:>6} {figure:>12}")
    print("  (plus one 'SELECT 1' health check per request from conn_health_checks, not captured)")
    print("the reveal's statements:")
    for number, sql in enumerate(reveal_statements, 1):
        print(f"  {number:>2}. {sql[:140]}")
    return 0


def run(args: argparse.Namespace, temp_dir: Path) -> int:
    if not args.instructions or os.environ.get(CALLGRIND_OUT):
        return measure(args, temp_dir)
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("valgrind is not installed (Debian: apt-get install valgrind); measuring without instructions")
        return measure(args, temp_dir)
    out = temp_dir / "callgrind.out"
    command = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        f"--callgrind-out-file={out}",
        f"--log-file={temp_dir / 'valgrind.log'}",
        sys.executable,
        str(Path(__file__).resolve()),
        f"--requests={args.requests}",
        f"--warmup={args.warmup}",
    ]
    environment = {**os.environ, CALLGRIND_OUT: str(out)}
    print("running under callgrind: a few minutes")
    completed = subprocess.run(command, env=environment, check=False)
    return completed.returncode


def main() -> int:
    return run_in_temp_dir(run, parse_args(), prefix="jit-cost-bench-", what="callgrind")


if __name__ == "__main__":
    sys.exit(main())
