"""Who may see and edit what in the Django admin, by role rather than per-model permissions."""

from __future__ import annotations

from typing import Any

from django.contrib import admin

from jitaccess.roles import can_read_everything, is_security_admin


class SecurityAdminPermissions:
    """Configuration: security admins edit; auditors look. For model admins and their inlines."""

    def has_module_permission(self, request: Any) -> bool:
        return can_read_everything(request.user)

    def has_view_permission(self, request: Any, obj: Any = None) -> bool:
        return can_read_everything(request.user)

    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return is_security_admin(request.user) or request.user.is_superuser

    has_change_permission = has_add_permission

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return self.has_add_permission(request, obj)


class SecurityAdminEditable(SecurityAdminPermissions, admin.ModelAdmin):
    pass


class SecurityAdminEditableInline(SecurityAdminPermissions, admin.TabularInline):
    pass


class ReadOnlyRecord(admin.ModelAdmin):
    """Workflow records change only through the services, never by editing rows."""

    def has_module_permission(self, request: Any) -> bool:
        return can_read_everything(request.user)

    def has_view_permission(self, request: Any, obj: Any = None) -> bool:
        return can_read_everything(request.user)

    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False
