"""One error shape for the whole API: ``{"detail", "code"}``, plus ``errors`` naming the fields."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from jitaccess.errors import DomainError, InvalidInput


def _first_message(value: Any) -> str:
    while isinstance(value, (list, dict)) and value:
        value = value[0] if isinstance(value, list) else next(iter(value.values()))
    return str(value)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, InvalidInput):
        return Response(
            {"detail": f"{exc.field}: {exc.detail}", "code": exc.code, "errors": {exc.field: [exc.detail]}},
            status=status.HTTP_400_BAD_REQUEST,
        )
    if isinstance(exc, DomainError):
        return Response({"detail": exc.detail, "code": exc.code}, status=exc.status_code)

    # Django's own 404 / 403 get the contract's shape too, without naming internal models.
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        errors = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        summary = "; ".join(f"{field}: {_first_message(message)}" for field, message in errors.items())
        response.data = {"detail": summary, "code": "invalid", "errors": errors}
    elif isinstance(exc, exceptions.APIException):
        detail = exc.detail
        codes = exc.get_codes()
        response.data = {
            "detail": _first_message(detail),
            "code": codes if isinstance(codes, str) else _first_message(codes),
        }
    return response


# --- answers Django gives before or after any API view ------------------------------------------
# A path under /api/ that matches no route, or a view that crashed, still answers in the API's
# shape (JSON), never with the HTML error pages meant for people.


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def _api_error(exc: exceptions.APIException) -> JsonResponse:
    return JsonResponse({"detail": str(exc.detail), "code": exc.default_code}, status=exc.status_code)


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return _api_error(exceptions.NotFound())
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if _is_api(request):
        return _api_error(exceptions.APIException())
    return defaults.server_error(request)
