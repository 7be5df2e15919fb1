"""The app server the benchmarks measure: gunicorn as a subprocess on a free local port, in a
session of its own so a Ctrl-C reaches only the bench, which then stops it; and its worker pids."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def server_environment(temp_dir: Path, *, root_key: str, signing_key: str, sink: Path) -> None:
    """What every benchmarked app server runs with (gunicorn inherits the environment): production
    settings on bench-only keys, no rate limit in the way of the load, a throwaway JIT_VAR_DIR.
    Defaults a caller's environment may override, except the var dir and the settings module."""
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only-secret-key-not-for-any-deployment-0123456789")
    os.environ.setdefault("JIT_ROOT_KEY", root_key)
    os.environ.setdefault("JIT_AUDIT_SIGNING_KEY", signing_key)
    os.environ.setdefault("JIT_AUDIT_SINK", str(sink))
    os.environ.setdefault("DJANGO_DEBUG", "false")
    os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "127.0.0.1")
    # The benches measure throughput; the production limits would refuse most of it.
    for rate in ("JIT_TOKEN_THROTTLE", "JIT_TOKEN_USER_THROTTLE", "JIT_REVEAL_THROTTLE", "JIT_DECIDE_THROTTLE"):
        os.environ.setdefault(rate, "1000000/min")
    os.environ.setdefault("JIT_LOG_LEVEL", "WARNING")
    var_dir = temp_dir / "var"
    var_dir.mkdir()
    os.environ["JIT_VAR_DIR"] = str(var_dir)
    os.environ["DJANGO_SETTINGS_MODULE"] = "jitaccess.settings"
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    # Ahead of bench/ (the script's own folder), where bench/keys.py would shadow the keys app.
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))


def child_pids(parent: int) -> list[int]:
    """Live children (not zombies: a worker killed a moment ago may not be reaped yet)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, ppid = stat.read_text().rsplit(")", 1)[1].split()[:2]
            if int(ppid) == parent and state != "Z":
                pids.append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    return pids


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Gunicorn:
    """The app server as a subprocess in its own session, always stopped again."""

    def __init__(
        self, log_path: Path, *, workers: int, worker_class: str, threads: int, timeout: int | None = None
    ) -> None:
        self.log_path = log_path
        self.port = free_port()
        self.argv = [
            sys.executable,
            "-m",
            "gunicorn",
            "jitaccess.wsgi",
            f"--workers={workers}",
            f"--worker-class={worker_class}",
            f"--bind=127.0.0.1:{self.port}",
            f"--chdir={REPO_ROOT}",
            f"--error-logfile={log_path}",
            "--log-level=warning",
            "--graceful-timeout=5",
        ]
        if worker_class == "gthread":
            self.argv.append(f"--threads={threads}")
        if timeout is not None:
            self.argv.append(f"--timeout={timeout}")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> float:
        self.process = subprocess.Popen(
            self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with code {self.process.returncode}; see {self.log_path}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/healthz")
                ok = conn.getresponse().status == 200
                conn.close()
                if ok:
                    return time.monotonic() - started
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer /healthz within {timeout:.0f} s; see {self.log_path}")

    def workers(self) -> list[int]:
        return child_pids(self.process.pid) if self.process else []

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)  # the session id is gunicorn's pid
            self.process.wait()

    def log_tail(self, lines: int = 20) -> str:
        if not self.log_path.exists():
            return ""
        text = self.log_path.read_text(errors="replace").splitlines()
        return f"--- gunicorn log (last {lines} lines) ---\n" + "\n".join(text[-lines:])
