from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ParseError, PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from jitaccess.accounts.reauth import reauth_required_for_session
from jitaccess.throttling import ExplainedThrottling
from keys import services
from keys.api.filters import SecretFilter
from keys.api.serializers import (
    KeyRingCreateSerializer,
    KeyRingSerializer,
    RevealedSerializer,
    RevealInputSerializer,
    SecretCreateSerializer,
    SecretSerializer,
    SecretUpdateSerializer,
)
from keys.models import KeyRing, Secret
from keys.permissions import can_create_keyrings, can_manage_keyring
from keys.reveal import secret_reveal, secret_reveal_throttled
from keys.selectors import keyrings_visible_to, secrets_visible_to


class KeyRingViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    serializer_class = KeyRingSerializer
    lookup_field = "name"
    lookup_value_regex = r"[-a-zA-Z0-9_]+"
    queryset = KeyRing.objects.none()  # for the schema generator; real reads are scoped below

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        return keyrings_visible_to(self.request.user)

    def _render(self, keyring: KeyRing, status: int = 200) -> Response:
        return Response(KeyRingSerializer(self.get_queryset().get(pk=keyring.pk)).data, status=status)

    @extend_schema(request=KeyRingCreateSerializer, responses={201: KeyRingSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        # Asked before the body is validated, so a caller who may not create learns nothing more.
        if not can_create_keyrings(request.user):
            raise PermissionDenied("Only security admins create key rings.")
        serializer = KeyRingCreateSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        keyring = services.keyring_create(**serializer.validated_data, acting_user=request.user)
        return self._render(keyring, status=201)

    @extend_schema(request=None, responses={200: KeyRingSerializer})
    @action(detail=True, methods=["post"])
    def rotate(self, request: Request, name: str | None = None) -> Response:
        keyring = self.get_object()
        if can_manage_keyring(request.user, keyring):
            reauth_required_for_session(request)
        services.keyring_rotate(keyring, acting_user=request.user)
        return self._render(keyring)


class SecretViewSet(
    ExplainedThrottling,
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = SecretSerializer
    filterset_class = SecretFilter
    # Any segment reaches the views: reveal audits even a malformed id; the others answer 404.
    lookup_value_regex = r"[^/]+"
    queryset = Secret.objects.none()  # for the schema generator; real reads are scoped below
    throttled_actions = {"reveal": "reveal"}
    # What a service-account token needs for each action (docs/AUTOMATION.md).
    service_token_scopes = {
        "list": "secrets:read",
        "retrieve": "secrets:read",
        "reveal": "secrets:reveal",
        "create": "secrets:write",
        "partial_update": "secrets:write",
    }

    @property
    def accepts_grant_credential(self) -> bool:
        # A grant credential opens the grant's secrets and does nothing else.
        return self.action == "reveal"

    def throttled(self, request: Request, wait: float | None) -> None:
        if self.action == "reveal":
            # A refused reveal is still an attempt: audited like any other refusal.
            credential = request.auth if getattr(request.auth, "is_grant_credential", False) else None
            try:
                reason = request.data.get("reason") if isinstance(request.data, dict) else None
            except ParseError:  # a malformed body is still a throttled attempt, without a reason
                reason = None
            secret_reveal_throttled(
                self.kwargs.get("pk", ""),
                acting_user=request.user,
                reason=reason,
                credential_grant_id=credential.grant_id if credential else None,
            )
        super().throttled(request, wait)

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        return secrets_visible_to(self.request.user)

    @extend_schema(request=SecretCreateSerializer, responses={201: SecretSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = SecretCreateSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        secret = services.secret_create(**serializer.validated_data, acting_user=request.user)
        return Response(SecretSerializer(secret).data, status=201)

    @extend_schema(request=SecretUpdateSerializer, responses={200: SecretSerializer})
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        secret = self.get_object()
        serializer = SecretUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        secret = services.secret_update(secret, acting_user=request.user, **serializer.validated_data)
        return Response(SecretSerializer(self.get_queryset().get(pk=secret.pk)).data)

    @extend_schema(request=RevealInputSerializer, responses={200: RevealedSerializer})
    @action(detail=True, methods=["post"])
    def reveal(self, request: Request, pk: str | None = None) -> Response:
        # Neither get_object() nor serializer validation: every attempt is audited by the service,
        # including one on a secret the caller cannot see or one without a reason.
        reason = request.data.get("reason") if isinstance(request.data, dict) else None
        credential = request.auth if getattr(request.auth, "is_grant_credential", False) else None
        revealed = secret_reveal(
            pk or "",
            acting_user=request.user,
            reason=reason,
            credential_grant_id=credential.grant_id if credential else None,
        )
        response = Response(
            RevealedSerializer(
                {"value": revealed.value, "key_version": revealed.key_version, "grant": revealed.grant_id}
            ).data
        )
        # The value is shown once: no browser, proxy or cache may keep it.
        response["Cache-Control"] = "no-store"
        response["Pragma"] = "no-cache"
        return response
