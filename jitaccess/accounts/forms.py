"""The account pages' forms: authenticator codes, re-authentication, service-account tokens."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.conf import settings
from django.core.validators import MaxValueValidator

from jitaccess.accounts.models import ServiceTokenScope
from jitaccess.accounts.selectors import service_accounts

CODE_FORMAT = "Enter the 6 digits your authenticator app shows."


class CodeForm(forms.Form):
    """One code from an authenticator app. Pages that show several of these give each a prefix,
    so their fields keep distinct ids."""

    code = forms.CharField(max_length=16, strip=True)

    def __init__(self, *args: Any, label: str = "Code from your authenticator app", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.label_suffix = ""
        field = self.fields["code"]
        field.label = label
        field.widget.attrs.update(
            {"autocomplete": "one-time-code", "inputmode": "numeric", "pattern": r"[0-9 ]*", "maxlength": 16}
        )

    def clean_code(self) -> str:
        # Apps show the code in two groups of three; people type the space too.
        code = re.sub(r"\s", "", self.cleaned_data["code"])
        if not re.fullmatch(r"\d{6,8}", code):
            raise forms.ValidationError(CODE_FORMAT)
        return code


class ReauthForm(forms.Form):
    """The password, and the current code for a person with an authenticator app."""

    password = forms.CharField(
        label="Password",
        strip=False,
        max_length=256,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )
    code = forms.CharField(
        label="Code from your authenticator app",
        max_length=16,
        required=False,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "pattern": r"[0-9 ]*", "maxlength": 16}
        ),
    )

    def __init__(self, *args: Any, needs_code: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.label_suffix = ""
        if needs_code:
            self.fields["code"].required = True
        else:
            del self.fields["code"]

    def clean_code(self) -> str:
        code = re.sub(r"\s", "", self.cleaned_data.get("code") or "")
        if not re.fullmatch(r"\d{6,8}", code):
            raise forms.ValidationError(CODE_FORMAT)
        return code


class ServiceTokenForm(forms.Form):
    """A security admin's new token for a service account. The service checks it all again."""

    account = forms.ModelChoiceField(
        queryset=None,  # set per form: the active service accounts now
        to_field_name="username",
        label="Service account",
        empty_label="Choose a service account",
        error_messages={"invalid_choice": "Choose an active service account from the list."},
    )
    name = forms.CharField(
        max_length=100,
        label="What it is for",
        help_text="The job or host that will use it, so the list says whose it is.",
    )
    scopes = forms.MultipleChoiceField(
        choices=ServiceTokenScope.choices,
        widget=forms.CheckboxSelectMultiple,
        label="Scopes",
        help_text="Grant only what the job needs. Revealing also needs the account's standing membership.",
        error_messages={"required": "Choose at least one scope."},
    )
    days = forms.IntegerField(label="Lifetime in days", min_value=1, initial=30)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        self.fields["account"].queryset = service_accounts()
        limit = settings.JIT_SERVICE_TOKEN_MAX_DAYS
        days = self.fields["days"]
        days.max_value = limit
        days.validators.append(MaxValueValidator(limit))
        days.widget.attrs["max"] = limit
        days.help_text = f"Every token expires; at most {limit} days."
        self.fields["name"].widget.attrs["autocomplete"] = "off"


class HelpBackInForm(forms.Form):
    """Whom to let back in, and why (the reason goes into the audit trail)."""

    username = forms.CharField(max_length=150, label="User name", strip=True)
    reason = forms.CharField(
        max_length=500,
        label="Reason",
        help_text="Recorded in the audit trail, e.g. the ticket of the call asking for it.",
        error_messages={"required": "Say why; the reason goes into the audit trail."},
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
