"""The API's filter forms, dressed for a browser: labels, hints and "any" choices.

Validation is inherited untouched, so a page and the API accept and refuse exactly the same input.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django import forms

from jitaccess.audit.actions import KNOWN_ACTIONS
from jitaccess.audit.filters import ChangeFilterForm, EventFilterForm, ReportForm, UtcDateTimeField
from jitaccess.audit.reports import DEFAULT_PERIOD

TIME_EXAMPLE = "2030-03-04T09:00Z"


def action_suggestions() -> list[str]:
    """Every action name and every family of them (``decision.*``, ``decision.refused.*``)."""
    families = set()
    for name in KNOWN_ACTIONS:
        parts = name.split(".")
        families.update(".".join(parts[:depth]) + ".*" for depth in range(1, len(parts)))
    return sorted(KNOWN_ACTIONS | families)


class BrowserDress:
    """Applied over one of the filter forms. ``blank_choices`` labels the empty choice of a
    select (a bound select otherwise shows its first real choice as if it were chosen);
    ``omitted`` drops fields a page does not use; ``datalists`` holds the suggestions offered
    under a text field (``suggest``)."""

    labels: ClassVar[dict[str, str]] = {}
    blank_choices: ClassVar[dict[str, str]] = {}
    omitted: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        self.datalists: dict[str, list[str]] = {}
        fields: dict[str, forms.Field] = self.fields  # type: ignore[attr-defined]
        for name in self.omitted:
            del fields[name]
        for name, field in fields.items():
            if name in self.labels:
                field.label = self.labels[name]
            if name in self.blank_choices:
                field.choices = [("", self.blank_choices[name]), *field.choices]
            if isinstance(field, UtcDateTimeField):
                field.help_text = f"{field.help_text} In UTC unless an offset is given."
                field.widget.attrs.update({"placeholder": TIME_EXAMPLE, "autocomplete": "off"})

    def suggest(self, name: str, values: list[str]) -> None:
        """Offer ``values`` under the text field ``name``; any other value may still be typed."""
        list_id = f"{name}-suggestions"
        self.fields[name].widget.attrs["list"] = list_id  # type: ignore[attr-defined]
        self.datalists[list_id] = values


class EventFilterPageForm(BrowserDress, EventFilterForm):
    field_order = ("actor", "action", "target_type", "target_id", "grant", "outcome", "since", "until")
    labels = {
        "target_id": "Target id",
        "grant": "Grant id",
        "seq_min": "From seq",
        "seq_max": "To seq",
        "correlation_id": "Correlation id",
    }
    blank_choices = {"outcome": "any"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.suggest("action", action_suggestions())


class ChangeFilterPageForm(BrowserDress, ChangeFilterForm):
    field_order = ("model", "object_pk", "actor", "since", "until")
    labels = {"object_pk": "Object id"}

    def __init__(self, *args: Any, model_suggestions: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.suggest("model", model_suggestions)


class ReportPageForm(BrowserDress, ReportForm):
    # The page is the table; its CSV download is the API's, linked from the page.
    omitted = ("format",)
    blank_choices = {"period": f"{DEFAULT_PERIOD} (default)"}
