from __future__ import annotations

import re
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from jitaccess.audit.context import audit_context

# A caller-supplied request id is kept only if it is short and plain, so it cannot smuggle
# anything into the audit trail or logs.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


class AuditContextMiddleware:
    """Gives every HTTP request a correlation id and the client IP for its audit events."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        supplied = request.headers.get("X-Request-ID", "")
        correlation_id = supplied if _REQUEST_ID.match(supplied) else None
        with audit_context(correlation_id=correlation_id, ip=request.META.get("REMOTE_ADDR")) as ctx:
            request.correlation_id = ctx.correlation_id
            response = self.get_response(request)
        response["X-Request-ID"] = ctx.correlation_id
        return response
