"""The Django admin site, behind the same second factor as the token endpoint."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import ValidationError
from django_otp import devices_for_user
from django_otp.admin import OTPAdminAuthenticationForm, OTPAdminSite

from jitaccess.accounts.permissions import second_factor_satisfied
from jitaccess.accounts.services import login_failed_record

# One answer for a wrong password, a missing code and a wrong code, so the form never tells a
# guesser that the password was right (the token endpoint answers the same way).
SIGN_IN_REFUSED = "Please enter a correct username, password and, if you have one, authenticator code."


class JitAdminAuthenticationForm(OTPAdminAuthenticationForm):
    """Password, plus the TOTP code for users with a confirmed device; password alone otherwise."""

    error_messages = {**OTPAdminAuthenticationForm.error_messages, "invalid_login": SIGN_IN_REFUSED}
    otp_error_messages = {
        **OTPAdminAuthenticationForm.otp_error_messages,
        "token_required": SIGN_IN_REFUSED,
        "invalid_token": SIGN_IN_REFUSED,
        "n_failed_attempts": SIGN_IN_REFUSED,
        "verification_not_allowed": SIGN_IN_REFUSED,
        "device_required": SIGN_IN_REFUSED,
    }

    def _update_form(self, user: Any) -> None:
        super()._update_form(user)
        # django-otp echoes the password back once it was right, which would tell a guesser
        # exactly that; the answer must look the same as for a wrong password.
        self.fields["password"].widget.render_value = False

    def clean_otp(self, user: Any) -> None:
        if user is None:
            return
        devices = list(devices_for_user(user, confirmed=True))
        if not devices:
            return
        if not self.cleaned_data.get("otp_device") and len(devices) == 1:
            # django-otp wants the device named, so a code is never tried against every device;
            # with only one there is nothing to choose, and the first form can succeed.
            self.cleaned_data["otp_device"] = devices[0].persistent_id
        try:
            super().clean_otp(user)
        except ValidationError:
            login_failed_record(username=user.get_username(), reason="second_factor")
            raise


class JitAdminSite(admin.AdminSite):
    login_form = JitAdminAuthenticationForm
    login_template = OTPAdminSite.login_template

    def has_permission(self, request: Any) -> bool:
        # A session opened without the code (force_login, a password-only form elsewhere) must
        # not reach the admin of a user who has a device.
        return super().has_permission(request) and second_factor_satisfied(request.user)
