"""Admin pages for key rings and secrets: metadata and versions, never key material or values.

Every change goes through keys.services, so it is checked and audited like an API call.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet

from jitaccess.admin_access import ReadOnlyRecord, SecurityAdminEditable
from jitaccess.errors import DomainError
from keys import services
from keys.errors import KeyFailure
from keys.models import KeyRing, KeyVersion, Provider, Secret
from keys.providers import provider_for
from keys.selectors import key_version_references


class KeyRingForm(forms.ModelForm):
    class Meta:
        model = KeyRing
        fields = ["name", "description", "security_group", "provider", "provider_key", "rotation_period_seconds"]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.instance.pk is None and data.get("provider"):
            if data["provider"] == Provider.PKCS11 and not data.get("provider_key"):
                self.add_error("provider_key", "An HSM key ring needs the label of its key in the HSM.")
                return data
            try:
                provider_for(data["provider"]).check(data.get("provider_key", ""))
            except KeyFailure as exc:
                self.add_error("provider", f"The provider cannot be used now: {exc}")
        return data


class KeyVersionInline(admin.TabularInline):
    model = KeyVersion
    extra = 0
    can_delete = False
    fields = ("version", "state", "root_ref", "created_at", "archived_at", "destroyed_at", "references")
    readonly_fields = fields

    def references(self, version: KeyVersion) -> int:
        return key_version_references(version.keyring).get(version.version, 0)

    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_view_permission(self, request: Any, obj: Any = None) -> bool:
        return True


@admin.register(KeyRing)
class KeyRingAdmin(SecurityAdminEditable):
    form = KeyRingForm
    list_display = ("name", "security_group", "provider", "provider_key", "rotated_at", "next_rotation_at")
    search_fields = ("name",)
    inlines = [KeyVersionInline]
    actions = ["rotate", "rewrap", "archive_unreferenced"]

    def get_readonly_fields(self, request: Any, obj: KeyRing | None = None) -> tuple[str, ...]:
        # Re-pointing a ring at another group or provider would strand or expose its secrets.
        if obj is None:
            return ()
        return ("name", "security_group", "provider", "provider_key", "rotated_at", "next_rotation_at")

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def save_model(self, request: Any, obj: KeyRing, form: Any, change: bool) -> None:
        if change:
            services.keyring_policy_update(
                obj,
                rotation_period_seconds=obj.rotation_period_seconds,
                description=obj.description,
                acting_user=request.user,
            )
            return
        created = services.keyring_create(
            name=obj.name,
            security_group=obj.security_group,
            provider=obj.provider,
            provider_key=obj.provider_key,
            rotation_period_seconds=obj.rotation_period_seconds,
            description=obj.description,
            acting_user=request.user,
        )
        obj.pk = created.pk

    def _each(self, request: Any, queryset: QuerySet[KeyRing], verb: str, run: Any) -> None:
        for keyring in queryset:
            try:
                outcome = run(keyring)
            except DomainError as exc:
                self.message_user(request, f"{keyring.name}: {exc.detail}", messages.ERROR)
            else:
                self.message_user(request, f"{keyring.name}: {verb} {outcome}")

    @admin.action(permissions=["change"], description="Rotate: make a new primary key version")
    def rotate(self, request: Any, queryset: QuerySet[KeyRing]) -> None:
        self._each(
            request,
            queryset,
            "rotated to version",
            lambda ring: services.keyring_rotate(ring, acting_user=request.user).version,
        )

    @admin.action(permissions=["change"], description="Rewrap now: move every data key to the primary version")
    def rewrap(self, request: Any, queryset: QuerySet[KeyRing]) -> None:
        self._each(
            request,
            queryset,
            "rewrapped",
            lambda ring: services.keyring_rewrap(ring, acting_user=request.user),
        )

    @admin.action(permissions=["change"], description="Archive the versions no secret uses any more")
    def archive_unreferenced(self, request: Any, queryset: QuerySet[KeyRing]) -> None:
        self._each(
            request,
            queryset,
            "archived versions",
            lambda ring: services.keyversions_archive_unreferenced(ring, acting_user=request.user) or "none",
        )


@admin.register(Secret)
class SecretAdmin(ReadOnlyRecord):
    list_display = ("name", "keyring", "kind", "key_version", "value_version", "updated_at")
    list_filter = ("kind", "keyring")
    search_fields = ("name",)
    fields = ("name", "keyring", "kind", "metadata", "key_version", "value_version", "created_by", "created_at")
    readonly_fields = fields
