from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from jitaccess.accounts.permissions import IsSecurityAdmin
from jitaccess.accounts.reauth import reauth_required_for_session
from jitaccess.webhooks.api.filters import DeliveryFilter
from jitaccess.webhooks.api.serializers import (
    WebhookDeliverySerializer,
    WebhookEndpointCreatedSerializer,
    WebhookEndpointSerializer,
    WebhookEndpointWriteSerializer,
)
from jitaccess.webhooks.models import WebhookDelivery, WebhookEndpoint
from jitaccess.webhooks.selectors import deliveries_visible_to, endpoints_visible_to
from jitaccess.webhooks.services import (
    delivery_redeliver,
    endpoint_create,
    endpoint_deactivate,
    endpoint_secret_rotate,
    endpoint_update,
)

DEACTIVATED = OpenApiResponse(description="The endpoint was deactivated; create a new one instead.")


def _shown_once(body: dict[str, Any], *, status_code: int) -> Response:
    response = Response(body, status=status_code)
    # The signing secret is in this answer only: no browser, proxy or cache may keep it.
    response["Cache-Control"] = "no-store"
    return response


class WebhookEndpointViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Security admins: the receivers of workflow events (docs/WEBHOOKS.md).

    Every write with a browser session needs a recent re-authentication, as on the pages.
    """

    permission_classes = [IsSecurityAdmin]
    serializer_class = WebhookEndpointSerializer
    queryset = WebhookEndpoint.objects.none()  # for the schema generator; real reads are scoped below
    lookup_value_regex = r"\d+"
    filter_backends: list[type] = []

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        return endpoints_visible_to(self.request.user)

    def _fresh(self, endpoint: WebhookEndpoint) -> dict[str, Any]:
        return WebhookEndpointSerializer(self.get_queryset().get(pk=endpoint.pk)).data

    @extend_schema(
        request=WebhookEndpointWriteSerializer,
        responses={201: WebhookEndpointCreatedSerializer},
        description="The signing secret is in this answer only; store it now. Audited as webhook.created.",
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = WebhookEndpointWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        reauth_required_for_session(request)
        secret, endpoint = endpoint_create(**serializer.validated_data, acting_user=request.user)
        return _shown_once({**self._fresh(endpoint), "signing_secret": secret}, status_code=status.HTTP_201_CREATED)

    @extend_schema(
        request=WebhookEndpointWriteSerializer(partial=True),
        responses={200: WebhookEndpointSerializer, 409: DEACTIVATED},
        description="Change the name, URL or events; a deactivated endpoint is a 409. Audited as webhook.updated.",
    )
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        endpoint = self.get_object()
        serializer = WebhookEndpointWriteSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        reauth_required_for_session(request)
        endpoint = endpoint_update(endpoint, **serializer.validated_data, acting_user=request.user)
        return Response(self._fresh(endpoint))

    @extend_schema(
        request=None,
        responses={200: WebhookEndpointSerializer},
        description="Stops all sending to the endpoint; its pending deliveries are marked failed. "
        "Deactivating twice changes nothing. Audited as webhook.deactivated.",
    )
    @action(detail=True, methods=["post"])
    def deactivate(self, request: Request, pk: str | None = None) -> Response:
        endpoint = self.get_object()
        reauth_required_for_session(request)
        return Response(self._fresh(endpoint_deactivate(endpoint, acting_user=request.user)))

    @extend_schema(
        request=None,
        responses={200: WebhookEndpointCreatedSerializer, 409: DEACTIVATED},
        description="A new signing secret, in this answer only; the old one stops signing at once. "
        "Audited as webhook.secret_rotated.",
    )
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request: Request, pk: str | None = None) -> Response:
        endpoint = self.get_object()
        reauth_required_for_session(request)
        secret, endpoint = endpoint_secret_rotate(endpoint, acting_user=request.user)
        return _shown_once({**self._fresh(endpoint), "signing_secret": secret}, status_code=status.HTTP_200_OK)


class WebhookDeliveryViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Security admins: deliveries of workflow events, newest first; ``status=failed`` lists the failures."""

    permission_classes = [IsSecurityAdmin]
    serializer_class = WebhookDeliverySerializer
    queryset = WebhookDelivery.objects.none()
    filterset_class = DeliveryFilter
    lookup_value_regex = r"\d+"

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        return deliveries_visible_to(self.request.user)

    @extend_schema(
        request=None,
        responses={
            202: WebhookDeliverySerializer,
            409: OpenApiResponse(description="The delivery has not failed, or its endpoint was deactivated."),
        },
        description="Send a failed delivery again (same delivery id, fresh attempts); anything else is a 409. "
        "Audited as webhook.redelivered.",
    )
    @action(detail=True, methods=["post"])
    def redeliver(self, request: Request, pk: str | None = None) -> Response:
        delivery = self.get_object()
        reauth_required_for_session(request)
        delivery = delivery_redeliver(delivery, acting_user=request.user)
        return Response(WebhookDeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)
