"""The way in and out shared by the benchmarks: a temporary directory, and a clean stop on
Ctrl-C or SIGTERM so no subprocess (worker, gunicorn) is left behind."""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path


def run_in_temp_dir(
    run: Callable[[argparse.Namespace, Path], int], args: argparse.Namespace, *, prefix: str, what: str
) -> int:
    """Call ``run(args, temp_dir)``; keep the directory (logs) when asked or when the run failed."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    temp_dir = Path(tempfile.mkdtemp(prefix=prefix))
    failed = True
    try:
        status = run(args, temp_dir)
        failed = status != 0
        return status
    except KeyboardInterrupt:
        print(f"interrupted; {what} stopped", file=sys.stderr)
        return 130
    finally:
        if args.keep_temp or failed:
            print(f"{what} logs kept in {temp_dir}", file=sys.stderr)
        else:
            shutil.rmtree(temp_dir, ignore_errors=True)
