from __future__ import annotations

from typing import Any

from auditlog.models import LogEntry
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from jitaccess.audit.models import Outcome


class _BlankAsNull(serializers.CharField):
    """System events have no actor; say null rather than an empty name."""

    def to_representation(self, value: Any) -> str | None:
        return value or None


class AuditEventSerializer(serializers.Serializer):
    """One event of the trail, as the list, the timelines, the exports and evidence packs show it.

    Reads model instances and ``.values()`` rows alike, so exports can stream plain rows.
    """

    seq = serializers.IntegerField()
    at = serializers.DateTimeField()
    actor = _BlankAsNull(source="actor_name", allow_null=True)
    action = serializers.CharField()
    target_type = serializers.CharField()
    target_id = serializers.CharField()
    grant = serializers.IntegerField(source="grant_id", allow_null=True)
    outcome = serializers.ChoiceField(choices=Outcome.choices)
    ip = serializers.IPAddressField(allow_null=True)
    correlation_id = serializers.CharField()
    data = serializers.JSONField()
    prev_hash = serializers.CharField()
    hash = serializers.CharField()


class ConfigChangeSerializer(serializers.Serializer):
    """One django-auditlog entry: a field-level change of a configuration model."""

    ACTIONS = {
        LogEntry.Action.CREATE: "create",
        LogEntry.Action.UPDATE: "update",
        LogEntry.Action.DELETE: "delete",
        LogEntry.Action.ACCESS: "access",
    }

    id = serializers.IntegerField()
    timestamp = serializers.DateTimeField()
    actor = serializers.CharField(source="actor.username", allow_null=True, default=None)
    action = serializers.SerializerMethodField()
    model = serializers.SerializerMethodField()
    object_pk = serializers.CharField()
    object_repr = serializers.CharField()
    changes = serializers.JSONField(source="changes_dict")
    remote_addr = serializers.IPAddressField(allow_null=True)

    @extend_schema_field(serializers.ChoiceField(choices=["create", "update", "delete", "access"]))
    def get_action(self, entry: LogEntry) -> str:
        return self.ACTIONS[entry.action]

    @extend_schema_field(serializers.CharField(help_text="app_label.model"))
    def get_model(self, entry: LogEntry) -> str:
        return f"{entry.content_type.app_label}.{entry.content_type.model}"


class VerificationSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    checked = serializers.IntegerField(help_text="Events whose hash and link were checked.")
    first_invalid_seq = serializers.IntegerField(allow_null=True)
    reason = serializers.CharField(allow_blank=True)
    last_checkpoint = serializers.JSONField(allow_null=True, help_text="The newest signed checkpoint, if any.")
    checkpoints_checked = serializers.IntegerField(help_text="Signed checkpoints whose signature was checked.")
    problems = serializers.ListField(child=serializers.CharField())
    sink = serializers.CharField(help_text="Where checkpoints are kept outside the database.")


class ReportInfoSerializer(serializers.Serializer):
    name = serializers.CharField()
    title = serializers.CharField()
    description = serializers.CharField()
    columns = serializers.ListField(child=serializers.CharField())


class ReportSerializer(ReportInfoSerializer):
    since = serializers.DateTimeField(allow_null=True)
    until = serializers.DateTimeField(allow_null=True)
    period = serializers.CharField()
    rows = serializers.ListField(child=serializers.DictField(), help_text="One object per row, keyed by column.")
