"""The append-only place outside the database where signed checkpoints are also kept.

``JIT_AUDIT_SINK`` is a file path (one JSON object per line, appended and fsynced) or
``syslog:`` / ``syslog://host:port``. A file sink can be read back by verification, and belongs
on storage the database administrator cannot rewrite (another host, WORM storage, a log shipper).
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

SYSLOG_PREFIX = "syslog:"


@dataclass(frozen=True)
class SinkLine:
    number: int
    entry: dict[str, Any] | None  # None: the line is not a JSON object


def _is_syslog(target: str) -> bool:
    return target.startswith(SYSLOG_PREFIX)


def sink_description() -> str:
    return settings.JIT_AUDIT_SINK


def sink_is_readable() -> bool:
    return not _is_syslog(settings.JIT_AUDIT_SINK)


class _FailingSysLogHandler(logging.handlers.SysLogHandler):
    """A syslog handler that raises instead of printing and carrying on."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (logging's name)
        raise


def _syslog_handler(target: str) -> logging.Handler:
    parts = urlsplit(target)
    if parts.hostname:
        return _FailingSysLogHandler(address=(parts.hostname, parts.port or 514))
    return _FailingSysLogHandler(address="/dev/log" if os.path.exists("/dev/log") else ("localhost", 514))


def sink_append(entry: dict[str, Any]) -> None:
    """Append one checkpoint; raises when it cannot, so the caller's transaction rolls back."""
    line = json.dumps(entry, sort_keys=True, separators=(",", ":"))
    target = settings.JIT_AUDIT_SINK
    if _is_syslog(target):
        handler = _syslog_handler(target)
        try:
            handler.emit(logging.makeLogRecord({"msg": f"jitaccess-audit-checkpoint {line}", "levelno": logging.INFO}))
        finally:
            handler.close()
        return
    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(fd, (line + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def sink_read() -> Iterator[SinkLine]:
    """Every line of a file sink, in order (nothing for syslog or a sink not written yet)."""
    if not sink_is_readable():
        return
    path = Path(settings.JIT_AUDIT_SINK)
    if not path.exists():
        return
    with path.open(encoding="utf-8", errors="replace") as lines:
        for number, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            try:
                entry = json.loads(raw)
            except ValueError:
                entry = None
            yield SinkLine(number, entry if isinstance(entry, dict) else None)
