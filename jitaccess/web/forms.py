"""The browser sign-in form."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.forms import AuthenticationForm

from jitaccess.admin_site import JitAdminAuthenticationForm


class SignInForm(JitAdminAuthenticationForm):
    """The admin's sign-in for everyone: the password, then the TOTP code of users with a
    confirmed device, with one answer for every failure. Only the admin's staff check is left out:
    auditors and approvers need not be staff to use the pages."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.label_suffix = ""
        code = self.fields["otp_token"]
        code.label = "Authenticator code"
        code.help_text = "Six digits from your authenticator app, if you have set one up."
        code.widget.attrs.update({"autocomplete": "one-time-code", "inputmode": "numeric", "maxlength": 10})
        self.fields["otp_device"].label = "Authenticator"

    def confirm_login_allowed(self, user: Any) -> None:
        AuthenticationForm.confirm_login_allowed(self, user)

    def needs_device_choice(self) -> bool:
        """Only a user with several confirmed devices has to name the one the code is from."""
        return len(self.fields["otp_device"].widget.choices) > 2  # a blank choice and two devices
