"""The security admins' forms: an entitlement's policy plus a formset of its ordered approval stages,
and the reason for revoking a grant.

The forms check the shape of each value; the rules of a policy (orders, durations, who may
approve) live in approvals.policy_services, which applies them again when saving.
``PolicyEditor`` puts every problem beside the field it is about.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.models import Group

from approvals.models import ApprovalStage, Entitlement, Purpose, SecurityGroup
from approvals.policy_services import MAX_STAGES, MIN_PENDING_TTL_SECONDS, PolicySpec, StageSpec, draft_problems
from approvals.workflow import RESERVED_GROUPS
from jitaccess.errors import InvalidInput

# The largest values the database columns hold: bigger numbers are a form error, not a crash.
INT_MAX = 2_147_483_647
SMALLINT_MAX = 32_767
# Blank stage rows offered under the filled ones; save and edit again for more.
SPARE_STAGE_ROWS = 2


def _groups() -> Any:
    # The role groups can neither request nor approve (approvals.workflow.RESERVED_GROUPS).
    return Group.objects.exclude(name__in=RESERVED_GROUPS).order_by("name")


class EntitlementForm(forms.Form):
    slug = forms.SlugField(
        max_length=100,
        help_text="The entitlement's permanent identifier (letters, digits, hyphens); it cannot be changed later.",
    )
    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    security_group = forms.ModelChoiceField(
        queryset=SecurityGroup.objects.order_by("name"),
        help_text="The protected group a grant makes the requester a temporary member of.",
    )
    requester_group = forms.ModelChoiceField(
        queryset=Group.objects.none(), help_text="Only its members may request this entitlement."
    )
    purposes = forms.MultipleChoiceField(
        choices=Purpose.choices,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Choose at least one purpose a request may give."},
        help_text="The purposes a request may give; at least one.",
    )
    requires_ticket = forms.BooleanField(required=False, label="A ticket reference is required")
    default_duration_seconds = forms.IntegerField(
        min_value=1, max_value=INT_MAX, label="Default duration (seconds)", help_text="3600 is one hour."
    )
    max_duration_seconds = forms.IntegerField(
        min_value=1, max_value=INT_MAX, label="Maximum duration (seconds)", help_text="No grant lasts longer."
    )
    pending_ttl_seconds = forms.IntegerField(
        min_value=MIN_PENDING_TTL_SECONDS,
        max_value=INT_MAX,
        initial=24 * 3600,
        label="Pending request lifetime (seconds)",
        help_text="A request not fully approved within this time expires. 86400 is one day.",
    )
    is_active = forms.BooleanField(
        required=False,
        initial=True,
        label="Open for new requests",
        help_text="Clear to deactivate: no new requests; existing requests and grants are kept.",
    )

    def __init__(self, *args: Any, editing: bool, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        self.fields["requester_group"].queryset = _groups()  # type: ignore[attr-defined]
        if editing:
            del self.fields["slug"]

    def clean_slug(self) -> str:
        slug = self.cleaned_data["slug"]
        if Entitlement.objects.filter(slug=slug).exists():
            raise forms.ValidationError("An entitlement with this slug already exists.")
        return slug

    def policy(self) -> PolicySpec:
        data = self.cleaned_data
        return PolicySpec(**{name: data[name] for name in PolicySpec.__dataclass_fields__})


class StageForm(forms.Form):
    order = forms.IntegerField(min_value=1, max_value=SMALLINT_MAX, help_text="1 is decided first.")
    name = forms.CharField(max_length=100, label="Stage name")
    approver_group = forms.ModelChoiceField(queryset=Group.objects.none())
    required_approvals = forms.IntegerField(
        min_value=1, max_value=SMALLINT_MAX, initial=1, help_text="Approvals from different members."
    )
    deadline_seconds = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=INT_MAX,
        label="Deadline (seconds, optional)",
        help_text="Approvers are reminded when the stage stays open this long.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        self.fields["approver_group"].queryset = _groups()  # type: ignore[attr-defined]

    def stage(self) -> StageSpec:
        return StageSpec(**{name: self.cleaned_data[name] for name in StageSpec.__dataclass_fields__})


class BaseStageFormSet(forms.BaseFormSet):
    default_error_messages = {
        "too_few_forms": "An entitlement needs at least one approval stage.",
        "too_many_forms": "At most %(num)d approval stages.",
    }

    def get_form_kwargs(self, index: int) -> dict[str, Any]:
        kwargs = super().get_form_kwargs(index)
        if index >= self.initial_form_count():
            # A spare row proposes the next order; left untouched it stays unchanged, so it is skipped.
            kwargs["initial"] = {"order": index + 1, "required_approvals": 1}
        return kwargs

    def add_fields(self, form: forms.Form, index: int | None) -> None:
        super().add_fields(form, index)
        if "DELETE" in form.fields:
            form.fields["DELETE"].label = "Remove this stage"

    def kept_forms(self) -> list[StageForm]:
        """The rows that are stages: neither removed nor left blank (call after is_valid)."""
        return [
            form
            for form in self.forms
            if form.has_changed() or not form.empty_permitted
            if not form.cleaned_data.get("DELETE")
        ]


StageFormSet = forms.formset_factory(
    StageForm,
    formset=BaseStageFormSet,
    extra=SPARE_STAGE_ROWS,
    min_num=1,
    validate_min=True,
    max_num=MAX_STAGES,
    validate_max=True,
    can_delete=True,
    can_delete_extra=False,
)


class PolicyEditor:
    """The entitlement form and its stage formset, validated and shown together."""

    def __init__(self, data: Any = None, *, entitlement: Entitlement | None = None) -> None:
        self.entitlement = entitlement
        initial: dict[str, Any] | None = None
        stages: list[dict[str, Any]] = []
        if entitlement is not None:
            initial = {name: getattr(entitlement, name) for name in PolicySpec.__dataclass_fields__}
            stages = [
                {
                    "order": stage.order,
                    "name": stage.name,
                    "approver_group": stage.approver_group_id,
                    "required_approvals": stage.required_approvals,
                    "deadline_seconds": stage.deadline_seconds,
                }
                for stage in ApprovalStage.objects.filter(entitlement=entitlement).order_by("order")
            ]
        self.form = EntitlementForm(data, initial=initial, editing=entitlement is not None)
        self.stages = StageFormSet(data, initial=stages, prefix="stages")
        self._stage_forms: list[StageForm] = []
        # Problems of the stages as a whole (none left, too many), shown above the rows.
        self.stage_list_errors: list[str] = []

    def is_valid(self) -> bool:
        # Everything is checked in one go, so every problem shows at once: each field on its own,
        # then the policy's rules over whatever values passed.
        form_ok = self.form.is_valid()
        stages_ok = self.stages.is_valid()
        self._stage_forms = self.stages.kept_forms()
        draft = draft_problems(self.form.cleaned_data, [form.cleaned_data for form in self._stage_forms])
        for problem in draft:
            self._add(problem.path, problem.message)
        return form_ok and stages_ok and not self.has_errors()

    def has_errors(self) -> bool:
        return bool(self.form.errors or self.stages.total_error_count() or self.stage_list_errors)

    def policy(self) -> PolicySpec:
        return self.form.policy()

    def stage_specs(self) -> list[StageSpec]:
        return [form.stage() for form in self._stage_forms]

    def slug(self) -> str:
        return self.form.cleaned_data["slug"]

    def refused(self, error: InvalidInput) -> None:
        """Show a service's refusal beside its field (``stages.<index>.<field>`` for a stage)."""
        self._add(error.field, error.detail)

    def _add(self, path: str, message: str) -> None:
        parts = path.split(".")
        if parts[0] == "stages" and len(parts) == 3 and parts[1].isdigit() and int(parts[1]) < len(self._stage_forms):
            form = self._stage_forms[int(parts[1])]
            form.add_error(parts[2] if parts[2] in form.fields else None, message)
        elif path == "stages":
            if message not in self.stages.non_form_errors():  # the formset's own count check said it
                self.stage_list_errors.append(message)
        else:
            self.form.add_error(path if path in self.form.fields else None, message)


class RevokeForm(forms.Form):
    # Surrounding blanks are stripped, so a reason of only spaces is a missing one.
    reason = forms.CharField(
        max_length=500,
        label="Reason for revoking",
        help_text="Kept with the grant and recorded in the audit trail.",
        error_messages={"required": "Say why the grant is revoked; the reason goes into the audit trail."},
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
