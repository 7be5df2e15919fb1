"""The error answers of every API operation, documented in one place.

The API's errors all have one shape (jitaccess/api_errors.py) and arise from the same causes
everywhere, so the schema class derives them from what the view is rather than each view listing
them: 400 where the operation takes input, 401 and 403 where it needs a caller, 404 where the
path names an object, 429 where the action is throttled. A view documents only what is particular
to it (409 and why); any error response it lists without a body gets the error shape too.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers
from rest_framework.permissions import AllowAny

from jitaccess.throttling import PerCallerActionThrottle


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="What went wrong, for a person to read.")
    code = serializers.CharField(help_text="A stable, machine-readable reason (e.g. invalid, not_pending).")
    errors = serializers.DictField(
        child=serializers.JSONField(),
        required=False,
        help_text="Bad input only: each field that was wrong, with its messages.",
    )


BAD_INPUT = "Bad input: `errors` names each field and says what is wrong with it."
NOT_AUTHENTICATED = "Not authenticated: no credentials, or a token that is unknown, expired or revoked."
NOT_ALLOWED = "Authenticated, but this caller may not do this."
NOT_FOUND = "No such object, or not visible to the caller."
THROTTLED = "Too many calls; `Retry-After` says in how many seconds to try again."
RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds until a call may succeed."}}


class ErrorResponsesSchema(AutoSchema):
    def _get_response_bodies(self, direction: str = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction=direction)
        for code, description in self._generic_errors().items():
            responses.setdefault(code, {"description": description})
        for code, response in responses.items():
            if code.startswith("4") and "content" not in response:
                described = OpenApiResponse(ErrorSerializer, description=response.get("description", ""))
                responses[code] = {**response, **self._get_response_for_code(described, code, direction=direction)}
        if "429" in responses:
            responses["429"].setdefault("headers", RETRY_AFTER)
        return dict(sorted(responses.items()))

    def _generic_errors(self) -> dict[str, str]:
        errors = {}
        takes_input = self._get_request_body() or any(
            parameter["in"] == "query" for parameter in self._get_parameters()
        )
        if takes_input:
            errors["400"] = BAD_INPUT
        if not all(isinstance(permission, AllowAny) for permission in self.view.get_permissions()):
            errors["401"] = NOT_AUTHENTICATED
            errors["403"] = NOT_ALLOWED
        if "{" in self.path:
            errors["404"] = NOT_FOUND
        if self._is_throttled():
            errors["429"] = THROTTLED
        return errors

    def _is_throttled(self) -> bool:
        for throttle in self.view.get_throttles():
            if isinstance(throttle, PerCallerActionThrottle):
                # Limits only the actions the view names (jitaccess/throttling.py).
                if getattr(self.view, "action", None) in getattr(self.view, "throttled_actions", {}):
                    return True
            else:
                return True
        return False
