from __future__ import annotations

from typing import Any

from rest_framework import serializers

from approvals.models import SecurityGroup
from jitaccess.serializers import StrictCharField, StrictInputSerializer, VisibleSlugField
from keys.models import KeyRing, KeyState, Provider, Secret, SecretKind
from keys.selectors import keyrings_visible_to


class KeyVersionSerializer(serializers.Serializer):
    version = serializers.IntegerField()
    state = serializers.ChoiceField(choices=KeyState.choices)
    created_at = serializers.DateTimeField()
    archived_at = serializers.DateTimeField(allow_null=True)
    destroyed_at = serializers.DateTimeField(allow_null=True)


class KeyRingSerializer(serializers.ModelSerializer):
    """Metadata only: no key material, wrapped or not, ever leaves through the API."""

    security_group = serializers.CharField(source="security_group.name")
    primary_version = serializers.SerializerMethodField()
    versions = KeyVersionSerializer(many=True)

    class Meta:
        model = KeyRing
        fields = [
            "name",
            "description",
            "security_group",
            "provider",
            "provider_key",
            "rotation_period_seconds",
            "rotated_at",
            "next_rotation_at",
            "primary_version",
            "versions",
        ]

    def get_primary_version(self, keyring: KeyRing) -> int | None:
        return next((v.version for v in keyring.versions.all() if v.state == KeyState.PRIMARY), None)


class KeyRingCreateSerializer(StrictInputSerializer):
    name = serializers.SlugField(max_length=100)
    description = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")
    # Only security admins create key rings, and they may name any group.
    security_group = VisibleSlugField(visible_to=lambda user: SecurityGroup.objects.all(), slug_field="name")
    provider = serializers.ChoiceField(choices=Provider.choices, default=Provider.LOCAL)
    provider_key = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    rotation_period_seconds = serializers.IntegerField(min_value=3600, max_value=10 * 365 * 24 * 3600, required=False)


class SecretSerializer(serializers.ModelSerializer):
    """What anyone who may see a secret sees: its metadata, never its value."""

    keyring = serializers.CharField(source="keyring.name")

    class Meta:
        model = Secret
        fields = [
            "id",
            "name",
            "keyring",
            "kind",
            "metadata",
            "key_version",
            "value_version",
            "created_at",
            "updated_at",
        ]


class SecretCreateSerializer(StrictInputSerializer):
    name = serializers.CharField(max_length=200)
    keyring = VisibleSlugField(visible_to=keyrings_visible_to, slug_field="name")
    kind = serializers.ChoiceField(choices=SecretKind.choices)
    metadata = serializers.JSONField(required=False, default=dict)
    value = StrictCharField(max_length=64 * 1024, trim_whitespace=False, write_only=True)


class SecretUpdateSerializer(StrictInputSerializer):
    metadata = serializers.JSONField(required=False)
    value = StrictCharField(max_length=64 * 1024, trim_whitespace=False, write_only=True, required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs:
            raise serializers.ValidationError({"value": ["Give a new value, new metadata, or both."]})
        return attrs


class RevealInputSerializer(StrictInputSerializer):
    reason = serializers.CharField(max_length=500)


class RevealedSerializer(serializers.Serializer):
    value = serializers.CharField()
    key_version = serializers.IntegerField()
    grant = serializers.IntegerField(allow_null=True)
