"""While a grant is active, every HTTP request its holder makes is recorded under the grant.

DESIGN.md §10: "all activity is logged and audited". The record is written after the view, with
the status it answered, in its own transaction; if it cannot be written the response is withheld
(503) so nothing done under a grant leaves the server unrecorded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse

from approvals.selectors import active_grant_ids
from jitaccess.audit.models import Outcome
from jitaccess.audit.services import audit_record

logger = logging.getLogger(__name__)


def _outcome(status: int) -> str:
    if status < 400:
        return Outcome.SUCCESS
    return Outcome.DENIED if status in (401, 403) else Outcome.FAILED


class GrantActivityMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        # Read after the view: API token and grant-credential users are set by DRF during it.
        user = getattr(request, "user", None)
        if not getattr(user, "is_authenticated", False) or getattr(user, "is_service_account", False):
            return response
        try:
            with transaction.atomic():
                for grant_id in active_grant_ids(user):
                    audit_record(
                        "grant.http_request",
                        actor=user,
                        target_type="http",
                        target_id=f"{request.method} {request.path}"[:64],
                        grant_id=grant_id,
                        outcome=_outcome(response.status_code),
                        # The path only: query strings can carry anything.
                        data={"method": request.method, "path": request.path[:500], "status": response.status_code},
                    )
        except Exception:
            logger.exception("could not record a request made under a grant; response withheld")
            return JsonResponse(
                {"detail": "The activity record could not be written; try again.", "code": "audit_unavailable"},
                status=503,
            )
        return response
