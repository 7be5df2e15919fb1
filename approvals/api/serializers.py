from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from approvals import workflow
from approvals.models import AccessRequest, Entitlement, Grant, Purpose, RequestState
from approvals.selectors import entitlements_visible_to, grant_effective_state, request_effective_state
from jitaccess.audit.api.serializers import AuditEventSerializer
from jitaccess.serializers import StrictInputSerializer, VisibleSlugField


class StageSerializer(serializers.Serializer):
    order = serializers.IntegerField()
    name = serializers.CharField()
    approver_group = serializers.CharField(source="approver_group.name")
    required_approvals = serializers.IntegerField()


class EntitlementSerializer(serializers.ModelSerializer):
    security_group = serializers.CharField(source="security_group.name")
    requester_group = serializers.CharField(source="requester_group.name")
    purposes = serializers.ListField(child=serializers.CharField())
    stages = StageSerializer(many=True)

    class Meta:
        model = Entitlement
        fields = [
            "slug",
            "name",
            "description",
            "security_group",
            "requester_group",
            "max_duration_seconds",
            "default_duration_seconds",
            "pending_ttl_seconds",
            "purposes",
            "requires_ticket",
            "stages",
        ]


class GrantSerializer(serializers.ModelSerializer):
    request = serializers.IntegerField(source="request_id")
    user = serializers.CharField(source="user.username")
    entitlement = serializers.CharField(source="entitlement.slug")
    security_group = serializers.CharField(source="security_group.name")
    state = serializers.SerializerMethodField()
    ended_at = serializers.SerializerMethodField()
    ended_by = serializers.CharField(source="ended_by.username", allow_null=True, default=None)
    credential_minted = serializers.SerializerMethodField()

    class Meta:
        model = Grant
        fields = [
            "id",
            "request",
            "user",
            "entitlement",
            "security_group",
            "starts_at",
            "expires_at",
            "state",
            "ended_at",
            "ended_by",
            "end_reason",
            "credential_minted",
        ]

    def _now(self) -> Any:
        return self.context["now"]

    @extend_schema_field(serializers.ChoiceField(choices=["active", "expired", "revoked"]))
    def get_state(self, grant: Grant) -> str:
        return grant_effective_state(grant, at=self._now())

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_ended_at(self, grant: Grant) -> str | None:
        ended = grant.ended_at
        if ended is None and grant_effective_state(grant, at=self._now()) != grant.state:
            ended = grant.expires_at
        return serializers.DateTimeField().to_representation(ended) if ended else None

    def get_credential_minted(self, grant: Grant) -> bool:
        return hasattr(grant, "credential")


class DecisionSerializer(serializers.Serializer):
    approver = serializers.CharField(source="approver.username")
    decision = serializers.CharField()
    comment = serializers.CharField()
    digest = serializers.CharField()
    decided_at = serializers.DateTimeField()


class RequestStageSerializer(serializers.Serializer):
    order = serializers.IntegerField()
    name = serializers.CharField()
    approver_group = serializers.CharField()
    required_approvals = serializers.IntegerField()
    state = serializers.ChoiceField(choices=["waiting", "open", "approved", "denied"])
    decisions = DecisionSerializer(many=True)


class AccessRequestSerializer(serializers.ModelSerializer):
    entitlement = serializers.CharField(source="entitlement.slug")
    requester = serializers.CharField(source="requester.username")
    state = serializers.SerializerMethodField()
    stages = serializers.SerializerMethodField()
    grant = serializers.SerializerMethodField()

    class Meta:
        model = AccessRequest
        fields = [
            "id",
            "entitlement",
            "requester",
            "purpose",
            "justification",
            "ticket",
            "duration_seconds",
            "state",
            "current_stage",
            "digest",
            "created_at",
            "pending_expires_at",
            "decided_at",
            "stages",
            "grant",
        ]

    @extend_schema_field(serializers.ChoiceField(choices=RequestState.values))
    def get_state(self, request: AccessRequest) -> str:
        return request_effective_state(request, at=self.context["now"])

    @extend_schema_field(RequestStageSerializer(many=True))
    def get_stages(self, request: AccessRequest) -> list[dict[str, Any]]:
        stages = workflow.stage_states(
            request.policy_snapshot,
            state=self.get_state(request),
            current_stage=request.current_stage,
            decisions=request.decisions.all(),
        )
        return RequestStageSerializer(stages, many=True).data

    @extend_schema_field(GrantSerializer(allow_null=True))
    def get_grant(self, request: AccessRequest) -> dict[str, Any] | None:
        grant = getattr(request, "grant", None)
        return GrantSerializer(grant, context=self.context).data if grant is not None else None


class AccessRequestCreateSerializer(StrictInputSerializer):
    entitlement = VisibleSlugField(visible_to=entitlements_visible_to)
    purpose = serializers.ChoiceField(choices=Purpose.choices)
    justification = serializers.CharField(max_length=4000)
    ticket = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    duration_seconds = serializers.IntegerField(required=False, min_value=1, max_value=10**9)


class DecisionInputSerializer(StrictInputSerializer):
    comment = serializers.CharField(max_length=4000, required=False, allow_blank=True, default="")
    stage = serializers.IntegerField(required=False, min_value=1, max_value=32767)
    digest = serializers.RegexField(r"^[0-9a-f]{64}$", required=False)


class RevokeInputSerializer(StrictInputSerializer):
    reason = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")


class CredentialSerializer(serializers.Serializer):
    credential = serializers.CharField()
    expires_at = serializers.DateTimeField()


# --- the evidence pack (auditors) ---------------------------------------------------------------


class RequestEvidenceSerializer(AccessRequestSerializer):
    """The request as the API shows it, with the policy it was judged by; its decisions and grant
    stand beside it in the pack."""

    class Meta(AccessRequestSerializer.Meta):
        fields = [
            *(name for name in AccessRequestSerializer.Meta.fields if name not in ("stages", "grant")),
            "policy_snapshot",
        ]


class DecisionEvidenceSerializer(serializers.Serializer):
    approver = serializers.CharField(source="decision.approver.username")
    stage = serializers.IntegerField(source="decision.stage_order")
    decision = serializers.CharField(source="decision.decision")
    comment = serializers.CharField(source="decision.comment")
    digest = serializers.CharField(source="decision.digest", help_text="The request digest this approver signed.")
    decided_at = serializers.DateTimeField(source="decision.decided_at")
    digest_matches = serializers.BooleanField(help_text="The signed digest is the digest of the request content.")


class CredentialEvidenceSerializer(serializers.Serializer):
    """What is known of the grant's credential; never the credential or its hash."""

    prefix = serializers.CharField()
    minted_at = serializers.DateTimeField(source="created_at")
    expires_at = serializers.DateTimeField()
    revoked_at = serializers.DateTimeField(allow_null=True)
    last_used_at = serializers.DateTimeField(allow_null=True)


class GrantEvidenceSerializer(GrantSerializer):
    credential = CredentialEvidenceSerializer(allow_null=True)

    class Meta(GrantSerializer.Meta):
        fields = [*GrantSerializer.Meta.fields, "credential"]


class EvidencePackSerializer(serializers.Serializer):
    generated_at = serializers.DateTimeField()
    request = RequestEvidenceSerializer()
    request_digest_valid = serializers.BooleanField(
        help_text="The stored request content still hashes to the digest it was submitted with."
    )
    decisions = DecisionEvidenceSerializer(many=True)
    grant = GrantEvidenceSerializer()
    events = AuditEventSerializer(many=True, help_text="Every event of the request and of the grant, oldest first.")
    chain_proof = serializers.JSONField(
        help_text="Each event's recomputed hash and link, and the signed checkpoint covering the last one."
    )
