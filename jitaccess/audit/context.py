"""Who / where / which correlation id the current unit of work belongs to.

Set by the HTTP middleware and by Celery tasks; read by ``audit_record`` so that services do not
have to thread the client IP and correlation id through every call.
"""

from __future__ import annotations

import contextvars
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class AuditContext:
    correlation_id: str
    ip: str | None = None


_current: contextvars.ContextVar[AuditContext | None] = contextvars.ContextVar("audit_context", default=None)


def new_correlation_id() -> str:
    return uuid.uuid4().hex


def current_correlation_id() -> str | None:
    """The id of the request or task under way, or None outside one (logging asks, never invents)."""
    ctx = _current.get()
    return ctx.correlation_id if ctx is not None else None


def current_context() -> AuditContext:
    ctx = _current.get()
    return ctx if ctx is not None else AuditContext(correlation_id=new_correlation_id())


@contextmanager
def audit_context(*, correlation_id: str | None = None, ip: str | None = None) -> Iterator[AuditContext]:
    ctx = AuditContext(correlation_id=correlation_id or new_correlation_id(), ip=ip)
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)
