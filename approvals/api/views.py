from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, mixins, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from approvals import selectors, services
from approvals.api.filters import AccessRequestFilter, GrantFilter
from approvals.api.serializers import (
    AccessRequestCreateSerializer,
    AccessRequestSerializer,
    CredentialSerializer,
    DecisionInputSerializer,
    EntitlementSerializer,
    EvidencePackSerializer,
    GrantSerializer,
    RevokeInputSerializer,
)
from approvals.evidence import grant_evidence_export
from approvals.models import AccessRequest, DecisionKind, Grant
from approvals.permissions import can_revoke_grant
from jitaccess import clock
from jitaccess.accounts.permissions import IsAuditor
from jitaccess.accounts.reauth import reauth_required_for_session
from jitaccess.audit.api.serializers import AuditEventSerializer
from jitaccess.audit.api.views import AuditorOnly, OldestEventFirst
from jitaccess.audit.models import AuditEvent
from jitaccess.throttling import ExplainedThrottling

NOT_DECIDABLE = OpenApiResponse(
    description="The request is no longer pending, or `stage` / `digest` do not match the open stage and the "
    "request as it is now; nothing was recorded."
)


class ClockContextMixin:
    """Every response is rendered against one reading of the clock."""

    def get_serializer_context(self) -> dict[str, Any]:
        context = super().get_serializer_context()  # type: ignore[misc]
        context["now"] = clock.now()
        return context


class EntitlementViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = EntitlementSerializer
    lookup_field = "slug"
    lookup_value_regex = r"[-a-zA-Z0-9_]+"  # anything else is a 404 before it reaches the database
    pagination_class = None

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return selectors.entitlements_visible_to(self.request.user)


class AccessRequestViewSet(
    ExplainedThrottling,
    ClockContextMixin,
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = AccessRequestSerializer
    filterset_class = AccessRequestFilter
    queryset = AccessRequest.objects.none()  # for the schema generator; real reads are scoped below
    throttled_actions = {"approve": "decide", "deny": "decide"}
    # What a service-account token needs for each action (docs/AUTOMATION.md); nothing else.
    service_token_scopes = {"list": "requests:read", "retrieve": "requests:read"}

    def get_queryset(self):  # type: ignore[no-untyped-def]
        user = self.request.user
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        if self.action == "list":
            if self.request.query_params.get("awaiting") == "me":
                qs = selectors.requests_awaiting(user)
            else:
                qs = selectors.requests_for_list(user)
        else:
            qs = selectors.requests_visible_to(user)
        return qs.select_related("grant__user", "grant__security_group", "grant__entitlement").prefetch_related(
            "decisions__approver"
        )

    @extend_schema(
        request=AccessRequestCreateSerializer,
        responses={201: AccessRequestSerializer},
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = AccessRequestCreateSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        created = services.request_submit(requester=request.user, **serializer.validated_data)
        return Response(self._render(created.pk), status=201)

    @extend_schema(
        parameters=[OpenApiParameter("awaiting", str, enum=["me"], description="Only requests I may decide now")]
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    def _decide(self, request: Request, decision: str) -> Response:
        target = self.get_object()
        serializer = DecisionInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        refusal = services.decision_refusal(target, approver=request.user, stage=None, digest=None, now=clock.now())
        if not services.decision_refusal_is_final(refusal, target, approver=request.user):
            reauth_required_for_session(request)
        services.request_decide(target, approver=request.user, decision=decision, **serializer.validated_data)
        return Response(self._render(target.pk))

    def _render(self, pk: int) -> dict[str, Any]:
        fresh = selectors.requests_visible_to(self.request.user).prefetch_related("decisions__approver").get(pk=pk)
        return AccessRequestSerializer(fresh, context=self.get_serializer_context()).data

    @extend_schema(request=DecisionInputSerializer, responses={200: AccessRequestSerializer, 409: NOT_DECIDABLE})
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk: str | None = None) -> Response:
        return self._decide(request, DecisionKind.APPROVE)

    @extend_schema(request=DecisionInputSerializer, responses={200: AccessRequestSerializer, 409: NOT_DECIDABLE})
    @action(detail=True, methods=["post"])
    def deny(self, request: Request, pk: str | None = None) -> Response:
        return self._decide(request, DecisionKind.DENY)

    @extend_schema(
        request=None,
        responses={200: AccessRequestSerializer, 409: OpenApiResponse(description="The request is no longer pending.")},
    )
    @action(detail=True, methods=["post"])
    def withdraw(self, request: Request, pk: str | None = None) -> Response:
        target = self.get_object()
        services.request_withdraw(target, acting_user=request.user)
        return Response(self._render(target.pk))


class GrantViewSet(ClockContextMixin, viewsets.ReadOnlyModelViewSet):
    serializer_class = GrantSerializer
    filterset_class = GrantFilter
    queryset = Grant.objects.none()
    service_token_scopes = {"list": "requests:read", "retrieve": "requests:read"}

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        return selectors.grants_visible_to(self.request.user).select_related("credential")

    @extend_schema(
        request=RevokeInputSerializer,
        responses={200: GrantSerializer, 409: OpenApiResponse(description="The grant has already ended.")},
    )
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str | None = None) -> Response:
        grant = self.get_object()
        serializer = RevokeInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        if grant.user_id != request.user.pk and can_revoke_grant(request.user, grant):
            reauth_required_for_session(request)  # ending someone else's access, as on the page
        grant = services.grant_revoke(grant, acting_user=request.user, reason=serializer.validated_data["reason"])
        return Response(
            GrantSerializer(self.get_queryset().get(pk=grant.pk), context=self.get_serializer_context()).data
        )

    @extend_schema(
        request=None,
        responses={
            201: CredentialSerializer,
            409: OpenApiResponse(description="The grant has ended, or its credential was already minted."),
        },
    )
    @action(detail=True, methods=["post"])
    def credential(self, request: Request, pk: str | None = None) -> Response:
        grant = self.get_object()
        token, credential = services.grant_credential_mint(grant, acting_user=request.user)
        return Response(
            CredentialSerializer({"credential": token, "expires_at": credential.expires_at}).data, status=201
        )

    @extend_schema(
        responses={200: EvidencePackSerializer},
        description="Auditors: the request, its policy snapshot and signed decisions, the grant, every audit "
        "event of them and the chain proof. Each pack is itself audited (audit.evidence_exported).",
    )
    @action(detail=True, methods=["get"], permission_classes=[IsAuditor], http_method_names=["get"])
    def evidence(self, request: Request, pk: str | None = None) -> Response:
        pack = grant_evidence_export(self.get_object(), acting_user=request.user)
        return Response(EvidencePackSerializer(pack, context={"now": pack.generated_at}).data)


# --- audit timelines (auditors) -----------------------------------------------------------------


class RequestTimelineView(AuditorOnly, generics.ListAPIView):
    """Every audit event of one request and of the grant it led to, oldest first."""

    serializer_class = AuditEventSerializer
    pagination_class = OldestEventFirst
    queryset = AuditEvent.objects.none()  # for the schema generator

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        return selectors.request_timeline(self.kwargs["pk"])


class GrantTimelineView(RequestTimelineView):
    """Every audit event of one grant, oldest first."""

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        return selectors.grant_timeline(self.kwargs["pk"])
