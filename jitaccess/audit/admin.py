from django.contrib import admin

from jitaccess.audit.models import AuditCheckpoint, AuditEvent
from jitaccess.roles import is_auditor


class AuditorReadOnlyAdmin(admin.ModelAdmin):
    """Read-only, and for auditors only: nobody changes or deletes audit rows through the app."""

    show_full_result_count = False  # no COUNT over a table of millions on every page

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_view_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return is_auditor(request.user)

    def has_module_permission(self, request):  # type: ignore[no-untyped-def]
        return is_auditor(request.user)


@admin.register(AuditEvent)
class AuditEventAdmin(AuditorReadOnlyAdmin):
    list_display = ("seq", "at", "actor_name", "action", "target_type", "target_id", "grant_id", "outcome")
    list_filter = ("outcome",)


@admin.register(AuditCheckpoint)
class AuditCheckpointAdmin(AuditorReadOnlyAdmin):
    list_display = ("seq", "at", "head_hash", "public_key")
