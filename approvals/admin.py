from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin

from approvals.models import (
    AccessRequest,
    ApprovalStage,
    Decision,
    Entitlement,
    Grant,
    Purpose,
    SecurityGroup,
    StandingMembership,
)
from approvals.services import standing_member_add, standing_member_problem, standing_member_remove
from approvals.workflow import reserved_group_problem
from jitaccess.admin_access import ReadOnlyRecord, SecurityAdminEditable, SecurityAdminEditableInline


class StandingMembershipForm(forms.ModelForm):
    class Meta:
        model = StandingMembership
        fields = ["user"]

    def clean_user(self) -> Any:
        user = self.cleaned_data["user"]
        problem = standing_member_problem(user)
        if problem:
            raise forms.ValidationError(problem)
        return user


class StandingMembershipInline(SecurityAdminEditableInline):
    model = StandingMembership
    form = StandingMembershipForm
    extra = 0

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        # Add and remove only: re-pointing a row at another user would skip the service that
        # checks for a service account and audits the change.
        return False


@admin.register(SecurityGroup)
class SecurityGroupAdmin(SecurityAdminEditable):
    list_display = ("name", "description")
    inlines = [StandingMembershipInline]

    def save_formset(self, request: Any, form: Any, formset: Any, change: bool) -> None:
        if formset.model is not StandingMembership:
            return super().save_formset(request, form, formset, change)
        # Memberships go through the services, so each change is checked and audited.
        for membership in formset.save(commit=False):
            standing_member_add(membership.security_group, user=membership.user, acting_user=request.user)
        for membership in formset.deleted_objects:
            standing_member_remove(membership, acting_user=request.user)


def _group_not_reserved(group: Any) -> Any:
    problem = reserved_group_problem(group.name) if group is not None else None
    if problem:
        raise forms.ValidationError(problem)
    return group


class ApprovalStageForm(forms.ModelForm):
    class Meta:
        model = ApprovalStage
        fields = "__all__"

    def clean_approver_group(self) -> Any:
        return _group_not_reserved(self.cleaned_data.get("approver_group"))


class ApprovalStageInline(SecurityAdminEditableInline):
    model = ApprovalStage
    form = ApprovalStageForm
    extra = 0


class EntitlementForm(forms.ModelForm):
    purposes = forms.MultipleChoiceField(choices=Purpose.choices, widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = Entitlement
        fields = "__all__"

    def clean_requester_group(self) -> Any:
        return _group_not_reserved(self.cleaned_data.get("requester_group"))

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        default, maximum = cleaned.get("default_duration_seconds"), cleaned.get("max_duration_seconds")
        if default and maximum and default > maximum:
            self.add_error("default_duration_seconds", "The default duration cannot exceed the maximum.")
        return cleaned


@admin.register(Entitlement)
class EntitlementAdmin(SecurityAdminEditable):
    form = EntitlementForm
    list_display = ("slug", "name", "security_group", "requester_group", "max_duration_seconds", "is_active")
    prepopulated_fields = {"slug": ("name",)}
    inlines = [ApprovalStageInline]


@admin.register(AccessRequest)
class AccessRequestAdmin(ReadOnlyRecord):
    list_display = ("id", "requester", "entitlement", "purpose", "state", "current_stage", "created_at")
    list_filter = ("state", "entitlement")


@admin.register(Decision)
class DecisionAdmin(ReadOnlyRecord):
    list_display = ("request", "stage_order", "approver", "decision", "decided_at")


@admin.register(Grant)
class GrantAdmin(ReadOnlyRecord):
    list_display = ("id", "user", "security_group", "starts_at", "expires_at", "state")
    list_filter = ("state",)
