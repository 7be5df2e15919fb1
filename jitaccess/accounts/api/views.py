from __future__ import annotations

from typing import Any

from django.contrib.auth import authenticate
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from jitaccess import clock
from jitaccess.accounts.api.serializers import (
    ServiceTokenCreatedSerializer,
    ServiceTokenCreateSerializer,
    ServiceTokenSerializer,
    TokenRequestSerializer,
    TokenSerializer,
)
from jitaccess.accounts.api.throttling import UsernameRateThrottle
from jitaccess.accounts.authentication import ENROL_FIRST
from jitaccess.accounts.lockout import lockout_reset_after_success
from jitaccess.accounts.models import ApiToken, ServiceToken
from jitaccess.accounts.permissions import IsSecurityAdmin
from jitaccess.accounts.reauth import reauth_required_for_session
from jitaccess.accounts.selectors import second_factor_missing, service_accounts, service_tokens_visible_to
from jitaccess.accounts.services import (
    api_token_create,
    api_token_revoke,
    login_failed_record,
    second_factor_problem,
    service_token_create,
    service_token_revoke,
)
from jitaccess.errors import InvalidInput


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

    @extend_schema(
        request=None,
        responses={
            204: None,
            400: OpenApiResponse(description="Not called with a personal token as Bearer (a browser session, say)."),
        },
    )
    def delete(self, request: Request) -> Response:
        if not isinstance(request.auth, ApiToken):
            raise exceptions.ValidationError({"authorization": ["Call this with the token to revoke as Bearer."]})
        api_token_revoke(request.auth, acting_user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ServiceTokenViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Security admins: the API tokens of service accounts (docs/AUTOMATION.md).

    Creating and revoking with a browser session needs a recent re-authentication, as on the page.
    """

    permission_classes = [IsSecurityAdmin]
    serializer_class = ServiceTokenSerializer
    queryset = ServiceToken.objects.none()  # for the schema generator; real reads are scoped below

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        return service_tokens_visible_to(self.request.user)

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "now": clock.now()}

    @extend_schema(
        request=ServiceTokenCreateSerializer,
        responses={201: ServiceTokenCreatedSerializer},
        description="The token is in this answer only; store it now. Audited as auth.service_token_created.",
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = ServiceTokenCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        reauth_required_for_session(request)
        data = serializer.validated_data
        account = service_accounts().filter(username=data["account"]).first()
        if account is None:
            raise InvalidInput("account", "No active service account has this user name.")
        token, record = service_token_create(
            account=account, name=data["name"], scopes=data["scopes"], days=data["days"], acting_user=request.user
        )
        body = {**ServiceTokenSerializer(record, context=self.get_serializer_context()).data, "token": token}
        response = Response(body, status=status.HTTP_201_CREATED)
        # The token is shown once: no browser, proxy or cache may keep it.
        response["Cache-Control"] = "no-store"
        return response

    @extend_schema(
        request=None,
        responses={200: ServiceTokenSerializer},
        description="Ends the token at once; revoking a revoked token changes nothing. "
        "Audited as auth.service_token_revoked.",
    )
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str | None = None) -> Response:
        token = self.get_object()
        reauth_required_for_session(request)
        token = service_token_revoke(token, acting_user=request.user)
        return Response(ServiceTokenSerializer(token, context=self.get_serializer_context()).data)
