"""The account pages' forms: authenticator codes and re-authentication."""

from __future__ import annotations

import re
from typing import Any

from django import forms

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
