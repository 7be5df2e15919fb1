"""The auditor's filters, validated once for the API, the downloads and the HTML pages.

Each form turns query parameters into the plain value its selectors take (``filters()``), so a
malformed filter is an error naming its field, never a database error.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django import forms
from django.contrib.contenttypes.models import ContentType

from jitaccess.audit.actions import action_filter_problem
from jitaccess.audit.models import Outcome
from jitaccess.audit.reports import DEFAULT_PERIOD, PERIODS, ReportWindow
from jitaccess.audit.selectors import ChangeFilters, EventFilters

# Sequence numbers, grant ids and log entry ids are bigints: larger values would be a database error.
BIGINT_MAX = 2**63 - 1


def _id_field(help_text: str) -> forms.IntegerField:
    return forms.IntegerField(required=False, min_value=1, max_value=BIGINT_MAX, help_text=help_text)


def _text_field(max_length: int, help_text: str) -> forms.CharField:
    return forms.CharField(required=False, max_length=max_length, help_text=help_text)


class UtcDateTimeField(forms.DateTimeField):
    """ISO 8601, normalised to UTC; a time that does not exist in UTC (year 0 or 10000) is refused."""

    def to_python(self, value: Any) -> datetime | None:
        parsed = super().to_python(value)
        try:
            return parsed.astimezone(UTC) if parsed is not None else None
        except OverflowError:
            raise forms.ValidationError("Out of range.", code="invalid") from None


class ChoiceWithDefault(forms.ChoiceField):
    """Optional; absent or blank means ``default``."""

    def __init__(self, *, default: str, **kwargs: Any) -> None:
        super().__init__(required=False, **kwargs)
        self.default = default

    def clean(self, value: Any) -> str:
        return super().clean(value) or self.default


class TimeRangeForm(forms.Form):
    # What ``filters()`` returns, a dataclass whose fields name the form fields it takes.
    filters_class: type

    since = UtcDateTimeField(required=False, help_text="From this time on (ISO 8601, inclusive).")
    until = UtcDateTimeField(required=False, help_text="Before this time (ISO 8601, exclusive).")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        if since is not None and until is not None and until <= since:
            self.add_error("until", "Must be later than since.")
        return cleaned

    def filters(self) -> Any:
        """The valid filters as ``filters_class``; blank parameters mean "any", like absent ones."""
        given = {name: self.cleaned_data.get(name) for name in self.filters_class.__dataclass_fields__}
        return self.filters_class(**{name: None if value == "" else value for name, value in given.items()})


class EventFilterForm(TimeRangeForm):
    filters_class = EventFilters

    actor = _text_field(150, "Username of the actor, as recorded at the time.")
    action = _text_field(66, "An action name (grant.revoked) or a family of them (decision.*).")
    target_type = _text_field(64, "Kind of target: access_request, grant, secret, keyring, ...")
    target_id = _text_field(64, "Id of the target; used with target_type.")
    grant = _id_field("Only events that happened under this grant.")
    outcome = forms.ChoiceField(required=False, choices=Outcome.choices, help_text="success, denied or failed.")
    seq_min = _id_field("Lowest sequence number (inclusive).")
    seq_max = _id_field("Highest sequence number (inclusive).")
    correlation_id = _text_field(64, "Only the events of one HTTP request or task.")

    def clean_action(self) -> str:
        value = self.cleaned_data["action"]
        problem = action_filter_problem(value) if value else None
        if problem:
            raise forms.ValidationError(problem)
        return value

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        low, high = cleaned.get("seq_min"), cleaned.get("seq_max")
        if low is not None and high is not None and high < low:
            self.add_error("seq_max", "Must not be lower than seq_min.")
        return cleaned


class EventExportForm(EventFilterForm):
    format = ChoiceWithDefault(
        default="jsonl", choices=[("jsonl", "JSON lines"), ("csv", "CSV")], help_text="File format of the download."
    )


class ChangeFilterForm(TimeRangeForm):
    filters_class = ChangeFilters

    model = _text_field(201, "Configuration model as app_label.model, e.g. approvals.entitlement.")
    object_pk = _text_field(255, "Primary key of the changed object.")
    actor = _text_field(150, "Username of whoever made the change.")

    def clean_model(self) -> str:
        value = self.cleaned_data["model"].lower()
        if not value:
            return value
        app_label, dot, model = value.partition(".")
        if not dot or not ContentType.objects.filter(app_label=app_label, model=model).exists():
            raise forms.ValidationError("Unknown model; name it as app_label.model.")
        return value


class ReportForm(TimeRangeForm):
    period = ChoiceWithDefault(
        default=DEFAULT_PERIOD,
        choices=[(period, period) for period in PERIODS],
        help_text="Bucket size of time series reports.",
    )
    format = ChoiceWithDefault(
        default="json",
        choices=[("json", "JSON"), ("csv", "CSV download")],
        help_text="json, or a csv download, which is itself audited.",
    )

    def window(self) -> ReportWindow:
        return ReportWindow(
            since=self.cleaned_data["since"], until=self.cleaned_data["until"], period=self.cleaned_data["period"]
        )
