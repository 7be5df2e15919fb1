from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from jitaccess.accounts.models import ServiceToken, ServiceTokenScope
from jitaccess.accounts.selectors import service_token_state
from jitaccess.serializers import StrictInputSerializer


class TokenRequestSerializer(StrictInputSerializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=256, trim_whitespace=False)
    otp = serializers.CharField(max_length=16, required=False, allow_blank=True)


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField()
    expires_at = serializers.DateTimeField()


class ServiceTokenSerializer(serializers.Serializer):
    """A service-account token as listed: never the token itself, only its first characters."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    account = serializers.CharField(source="account.username")
    scopes = serializers.ListField(child=serializers.ChoiceField(choices=ServiceTokenScope.values))
    prefix = serializers.CharField(help_text="The token's first characters, to tell tokens apart.")
    state = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    created_by = serializers.CharField(source="created_by.username")
    expires_at = serializers.DateTimeField()
    last_used_at = serializers.DateTimeField(allow_null=True, help_text="To the minute.")
    revoked_at = serializers.DateTimeField(allow_null=True)
    revoked_by = serializers.CharField(source="revoked_by.username", allow_null=True, default=None)

    @extend_schema_field(serializers.ChoiceField(choices=["active", "expired", "revoked"]))
    def get_state(self, token: ServiceToken) -> str:
        return service_token_state(token, at=self.context["now"])


class ServiceTokenCreateSerializer(StrictInputSerializer):
    account = serializers.CharField(max_length=150, help_text="User name of an active service account.")
    name = serializers.CharField(max_length=100, help_text="What the token is for.")
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=ServiceTokenScope.values), allow_empty=False, max_length=10
    )
    days = serializers.IntegerField(help_text="Lifetime in days, at most JIT_SERVICE_TOKEN_MAX_DAYS (default 90).")


class ServiceTokenCreatedSerializer(ServiceTokenSerializer):
    token = serializers.CharField(help_text="Shown only in this answer; only its hash is kept.")
