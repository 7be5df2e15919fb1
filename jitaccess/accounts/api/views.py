from __future__ import annotations

from django.contrib.auth import authenticate
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from jitaccess.accounts.api.serializers import TokenRequestSerializer, TokenSerializer
from jitaccess.accounts.api.throttling import UsernameRateThrottle
from jitaccess.accounts.authentication import ENROL_FIRST
from jitaccess.accounts.lockout import lockout_reset_after_success
from jitaccess.accounts.models import ApiToken
from jitaccess.accounts.selectors import second_factor_missing
from jitaccess.accounts.services import (
    api_token_create,
    api_token_revoke,
    login_failed_record,
    second_factor_problem,
)


class TokenView(APIView):
    """Exchange a username and password for a personal API token (``Bearer``)."""

    permission_classes = [AllowAny]  # explicitly open: this is how one signs in
    authentication_classes: list = []
    throttle_classes = [ScopedRateThrottle, UsernameRateThrottle]
    throttle_scope = "auth-token"

    @extend_schema(
        request=TokenRequestSerializer,
        responses={
            201: TokenSerializer,
            401: OpenApiResponse(description="Wrong username, password or one-time code (one answer for all)."),
            403: OpenApiResponse(description="The user's groups require an authenticator app not yet set up."),
            429: OpenApiResponse(description="Locked out after repeated failures, or throttled; see Retry-After."),
        },
        auth=[],
    )
    def post(self, request: Request) -> Response:
        serializer = TokenRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        username = serializer.validated_data["username"]
        user = authenticate(request._request, username=username, password=serializer.validated_data["password"])
        # A wrong password is audited by the user_login_failed receiver (signin_audit.py); axes
        # counts it toward the lockout and, once locked, answers 429 in place of this view.
        failed = user is None
        if not failed and second_factor_missing(user):
            # Only someone who gave the right password learns why; without a device there is no
            # code to ask for, and the way forward is the browser's enrolment page.
            login_failed_record(username=username, reason="second_factor_not_set_up")
            raise exceptions.PermissionDenied(ENROL_FIRST)
        if not failed and second_factor_problem(user, serializer.validated_data.get("otp", "")):
            login_failed_record(username=username, reason="second_factor")
            failed = True
        if failed:
            # One answer for an unknown user, a wrong password and a missing or wrong one-time
            # code: the response must not confirm that the password was right.
            raise exceptions.AuthenticationFailed("Invalid username, password or one-time code (otp).")
        lockout_reset_after_success(request._request, user.get_username())
        token, record = api_token_create(user=user)
        return Response(TokenSerializer({"token": token, "expires_at": record.expires_at}).data, status=201)

    def get_authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class TokenRevokeView(APIView):
    """Revoke the personal token this call is authenticated with."""

    @extend_schema(request=None, responses={204: None})
    def delete(self, request: Request) -> Response:
        if not isinstance(request.auth, ApiToken):
            raise exceptions.ValidationError({"authorization": ["Call this with the token to revoke as Bearer."]})
        api_token_revoke(request.auth, acting_user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
