"""Where jitctl keeps personal tokens: one file, readable by its owner only, one entry per server.

Entries are keyed by the server's base URL, so a token from one server is never sent to another.
``JITCTL_TOKEN`` in the environment takes the place of the file (for scripts and CI).
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TOKEN_ENV = "JITCTL_TOKEN"
FILE_NAME = "tokens.json"


class StoreProblem(Exception):
    """The token file is unreadable, malformed, or open to other users."""


@dataclass(frozen=True)
class Saved:
    token: str
    username: str
    expires_at: str
    source: str  # the file's path, or the environment variable's name


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or ""
    # The XDG spec says a relative value is invalid and must be ignored.
    root = Path(base) if os.path.isabs(base) else Path.home() / ".config"
    return root / "jitctl"


def token_file() -> Path:
    return config_dir() / FILE_NAME


def _read_all(path: Path) -> dict[str, Any]:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return {}
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        # As ssh does with keys: a token others could read is treated as already leaked.
        raise StoreProblem(
            f"{path} is open to other users (mode {stat.S_IMODE(mode):04o}); "
            f"run `chmod 600 {path}` or `jitctl logout`, then sign in again."
        )
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as problem:
        raise StoreProblem(f"Cannot read {path}: {problem}") from None
    if not isinstance(entries, dict):
        raise StoreProblem(f"{path} is not a jitctl token file.")
    return entries


def _write_all(path: Path, entries: dict[str, Any]) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # mkstemp creates the file 0600 and it is renamed over the old one: the token is never in a
    # file others can read, not even for a moment, and a crash leaves the old file whole.
    handle, temporary = tempfile.mkstemp(prefix=".tokens-", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(entries, out, indent=2, sort_keys=True)
            out.write("\n")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def token_load(server: str) -> Saved | None:
    """The personal token to use with ``server``: the environment's, else the file's entry."""
    from_env = os.environ.get(TOKEN_ENV, "").strip()
    if from_env:
        return Saved(token=from_env, username="", expires_at="", source=TOKEN_ENV)
    path = token_file()
    entry = _read_all(path).get(server)
    if not isinstance(entry, dict) or not isinstance(entry.get("token"), str):
        return None
    return Saved(
        token=entry["token"],
        username=str(entry.get("username", "")),
        expires_at=str(entry.get("expires_at", "")),
        source=str(path),
    )


def token_save(server: str, *, token: str, username: str, expires_at: str) -> Path:
    path = token_file()
    entries = _read_all(path)
    entries[server] = {"token": token, "username": username, "expires_at": expires_at}
    _write_all(path, entries)
    return path


def token_forget(server: str) -> bool:
    """Remove the server's entry; True when there was one. The file goes when it is empty."""
    path = token_file()
    entries = _read_all(path)
    if server not in entries:
        return False
    del entries[server]
    if entries:
        _write_all(path, entries)
    else:
        path.unlink(missing_ok=True)
    return True
