"""Log records tagged with the correlation id of their request or task, as plain text or JSON lines.

The id is the one AuditContextMiddleware (and each Celery task) puts into the audit context, so a
log line and the audit events of the same request can be joined on it.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from jitaccess.audit.context import current_correlation_id

# Attributes every LogRecord has; anything else was passed through ``extra=`` and is kept.
# Django's own ``request`` extra is an object whose path the message already gives.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "correlation_id", "taskName", "request"}


class CorrelationIdFilter(logging.Filter):
    """Adds ``correlation_id`` ("-" outside a request or task) to every record it sees."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "correlation_id"):
            # Django logs 4xx/5xx answers after the middleware has returned, with the request attached.
            request_id = getattr(getattr(record, "request", None), "correlation_id", None)
            record.correlation_id = current_correlation_id() or request_id or "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, correlation_id."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "correlation_id": getattr(record, "correlation_id", None) or current_correlation_id() or "-",
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        # default=str: an extra that is not JSON (a model, a UUID) is logged by its text, never lost.
        return json.dumps(entry, default=str, ensure_ascii=False)
