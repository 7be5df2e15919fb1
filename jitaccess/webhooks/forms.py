from __future__ import annotations

from typing import Any

from django import forms

from jitaccess.webhooks.events import WEBHOOK_EVENTS
from jitaccess.webhooks.models import DeliveryStatus


class WebhookEndpointForm(forms.Form):
    """A security admin's new receiver. The service checks it all again (https, no credentials)."""

    name = forms.CharField(max_length=100, label="Name", help_text="Who receives it, so the list says whose it is.")
    url = forms.CharField(
        max_length=2000,
        label="URL",
        help_text="https only. No user name or password in it: receivers check the signature instead.",
    )
    events = forms.MultipleChoiceField(
        choices=[(name, name) for name in WEBHOOK_EVENTS],
        widget=forms.CheckboxSelectMultiple,
        label="Events",
        error_messages={"required": "Choose at least one event."},
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        self.fields["url"].widget.attrs.update({"autocomplete": "off", "inputmode": "url", "spellcheck": "false"})


class DeliveryStatusForm(forms.Form):
    status = forms.ChoiceField(choices=[("", "All"), *DeliveryStatus.choices], required=False)
