from django.contrib import admin

from jitaccess.audit.models import AuditEvent
from jitaccess.roles import can_read_everything


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: nobody changes or deletes audit rows through the app."""

    list_display = ("seq", "at", "actor_name", "action", "target_type", "target_id", "grant_id", "outcome")
    list_filter = ("outcome",)
    show_full_result_count = False

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_view_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return can_read_everything(request.user)

    def has_module_permission(self, request):  # type: ignore[no-untyped-def]
        return can_read_everything(request.user)
