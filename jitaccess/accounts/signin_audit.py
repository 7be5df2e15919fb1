"""Sign-ins, sign-outs and failed sign-ins of every kind (admin, pages, token endpoint) are
audited through Django's own auth signals, so no login path can forget to."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver
from django.utils import timezone

from jitaccess.accounts.services import login_failed_record, session_event_record

# Set on a request by code that ends a session for the person (the idle timeout), or that audits
# its own failures (re-authentication writes ``auth.reauth_failed``, not a failed sign-in).
LOGOUT_REASON_ATTRIBUTE = "jit_logout_reason"
REAUTH_ATTRIBUTE = "jit_reauthenticating"
# Set by a sign-in that is not the password's (single sign-on): what auth.login records of it.
SIGN_IN_DETAILS_ATTRIBUTE = "jit_sign_in_details"
# Set by the lockout handler (lockout.py) when it sees an attempt.
LOCKOUT_REFUSED_ATTRIBUTE = "jit_refused_by_lockout"


def refused_by_lockout(request: Any) -> bool:
    """Was this attempt refused, unchecked, because its name and address were locked already?

    axes' backend marks such an attempt (``axes_locked_out``) before the failure signal is sent;
    axes' handler sets the same mark on the attempt that crosses the limit. The handler notes
    which it was when it runs first; before it runs, the mark can only be the backend's.
    """
    return bool(getattr(request, LOCKOUT_REFUSED_ATTRIBUTE, getattr(request, "axes_locked_out", False)))


@receiver(user_logged_in, dispatch_uid="jitaccess.audit.login")
def record_login(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    details = getattr(request, SIGN_IN_DETAILS_ATTRIBUTE, None) or {"method": "password"}
    session_event_record("auth.login", user=user, details=details)
    if request is not None and hasattr(request, "session"):
        # A fixed end for the session: without one, Django moves the expiry forward on every save
        # (the idle timeout saves once a minute), and an active session would never end.
        request.session.set_expiry(timezone.now() + timedelta(seconds=settings.SESSION_COOKIE_AGE))


@receiver(user_logged_out, dispatch_uid="jitaccess.audit.logout")
def record_logout(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if user is not None:  # logging out without a session
        session_event_record("auth.logout", user=user, reason=getattr(request, LOGOUT_REASON_ATTRIBUTE, None))


@receiver(user_login_failed, dispatch_uid="jitaccess.audit.login_failed")
def record_login_failed(sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any) -> None:
    if getattr(request, REAUTH_ATTRIBUTE, False):
        return
    reason = "locked_out" if refused_by_lockout(request) else "password"
    login_failed_record(username=str(credentials.get("username", "")), reason=reason)
