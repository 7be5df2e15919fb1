from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from jitaccess.accounts.models import ApiToken, GroupSecondFactorPolicy, OIDCIdentity, ServiceToken, User
from jitaccess.admin_access import ReadOnlyRecord, SecurityAdminEditable, SecurityAdminPermissions


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    fieldsets = DjangoUserAdmin.fieldsets + (("Automation", {"fields": ("is_service_account",)}),)
    list_display = ("username", "email", "is_service_account", "is_staff", "is_active")
    list_filter = ("is_service_account", "is_staff", "is_active", "groups")


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyRecord):
    list_display = ("prefix", "user", "created_at", "expires_at", "revoked_at", "last_used_at")
    exclude = ("token_hash",)


@admin.register(ServiceToken)
class ServiceTokenAdmin(ReadOnlyRecord):
    """Read-only: tokens are created and revoked on the security admins' page (audited there)."""

    list_display = ("prefix", "account", "name", "created_at", "expires_at", "last_used_at", "revoked_at")
    exclude = ("token_hash",)


@admin.register(GroupSecondFactorPolicy)
class GroupSecondFactorPolicyAdmin(SecurityAdminEditable):
    list_display = ("group", "require_totp")
    list_filter = ("require_totp",)


@admin.register(OIDCIdentity)
class OIDCIdentityAdmin(SecurityAdminPermissions, admin.ModelAdmin):
    """Which provider identity signs in as which account. Linking one decides who may act as the
    account, so only superusers change them (security admins and auditors look); every change is
    in the change log."""

    list_display = ("user", "subject", "issuer", "created_at", "last_login_at")
    search_fields = ("user__username", "subject")
    readonly_fields = ("created_at", "last_login_at")
    raw_id_fields = ("user",)

    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return request.user.is_superuser

    has_change_permission = has_add_permission
    has_delete_permission = has_add_permission
