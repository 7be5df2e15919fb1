"""The forms of the requester's and the approver's pages. They check shape only; the rules
(policy limits, who may decide) are the services', whose refusals land beside the same fields."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings

from approvals import workflow
from approvals.models import DecisionKind, Entitlement, Purpose
from approvals.selectors import requestable_entitlements
from keys.reveal import MAX_REASON_CHARS

MAX_JUSTIFICATION_CHARS = 4000
MAX_COMMENT_CHARS = 2000


def _text(label: str, help_text: str, *, max_length: int, rows: int = 4, required: bool = True) -> forms.CharField:
    return forms.CharField(
        label=label,
        help_text=help_text,
        max_length=max_length,
        required=required,
        widget=forms.Textarea(attrs={"rows": rows}),
    )


class EntitlementChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Entitlement) -> str:
        return f"{obj.name} ({obj.security_group.name})"


class AccessRequestForm(forms.Form):
    """A request for temporary membership. The duration is asked in minutes: the policy's limits
    are shown in minutes and hours, and seconds would only invite mistakes."""

    entitlement = EntitlementChoiceField(
        queryset=Entitlement.objects.none(),
        to_field_name="slug",
        empty_label="Choose what you need access to",
        help_text="Only entitlements your groups may request are listed.",
    )
    purpose = forms.ChoiceField(choices=[("", "Choose a purpose"), *Purpose.choices])
    justification = _text(
        "Justification",
        "What you will do and why it cannot wait. Approvers read this before they sign.",
        max_length=MAX_JUSTIFICATION_CHARS,
        rows=5,
    )
    ticket = forms.CharField(
        label="Ticket",
        max_length=200,
        required=False,
        help_text="The incident or change ticket, e.g. INC-1234. Some entitlements require one.",
    )
    duration_minutes = forms.IntegerField(
        label="Duration (minutes)",
        min_value=1,
        max_value=10 * 365 * 24 * 60,
        required=False,
        help_text="Leave empty for the entitlement's default. The policy's limits are listed below.",
    )

    # Where a service's refusal of a field lands on this form.
    SERVICE_FIELDS = {"duration_seconds": "duration_minutes"}

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.label_suffix = ""
        self.fields["entitlement"].queryset = requestable_entitlements(user)
        self.fields["duration_minutes"].widget.attrs.update({"inputmode": "numeric"})

    def clean(self) -> dict[str, Any]:
        """Check the input against the chosen policy here too, so every problem shows at once
        (the service, which checks again, stops at the first)."""
        cleaned = super().clean()
        entitlement = cleaned.get("entitlement")
        if entitlement is None:
            return cleaned
        submission = self.submission()
        problems = workflow.submission_problems(
            entitlement,
            purpose=submission["purpose"],
            justification=submission["justification"],
            ticket=submission["ticket"],
            duration_seconds=submission["duration_seconds"] or entitlement.default_duration_seconds,
            min_seconds=settings.JIT_MIN_GRANT_SECONDS,
        )
        for field, message in problems.items():
            name = self.SERVICE_FIELDS.get(field, field)
            if name not in self.errors:
                self.add_error(name, message)
        return cleaned

    def submission(self) -> dict[str, Any]:
        """The keyword arguments of ``request_submit``."""
        data = self.cleaned_data
        minutes = data.get("duration_minutes")
        return {
            "entitlement": data["entitlement"],
            "purpose": data.get("purpose", ""),
            "justification": data.get("justification", ""),
            "ticket": data.get("ticket", ""),
            "duration_seconds": minutes * 60 if minutes else None,
        }


class DecisionForm(forms.Form):
    """Approve or deny the open stage. ``stage`` and ``digest`` come from the page the approver
    read, so a decision never lands on a stage or a version of the request they did not see."""

    decision = forms.ChoiceField(choices=DecisionKind.choices, widget=forms.HiddenInput)
    comment = _text(
        "Comment",
        "Required when you deny; recorded with your decision and shown to the requester.",
        max_length=MAX_COMMENT_CHARS,
        required=False,
    )
    stage = forms.IntegerField(min_value=1, max_value=32767, widget=forms.HiddenInput)
    digest = forms.RegexField(regex=r"^[0-9a-f]{64}$", widget=forms.HiddenInput)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.label_suffix = ""


class ReasonForm(forms.Form):
    """A reason that is recorded in the audit trail (revoking early, revealing a secret)."""

    reason = forms.CharField(label="Reason", max_length=MAX_REASON_CHARS)

    def __init__(self, *args: Any, label: str = "Reason", help_text: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.label_suffix = ""
        self.fields["reason"].label = label
        self.fields["reason"].help_text = help_text
