"""Sign-ins, sign-outs and failed sign-ins of every kind (admin, pages, token endpoint) are
audited through Django's own auth signals, so no login path can forget to."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from jitaccess.accounts.services import login_failed_record, session_event_record


@receiver(user_logged_in, dispatch_uid="jitaccess.audit.login")
def record_login(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    session_event_record("auth.login", user=user)


@receiver(user_logged_out, dispatch_uid="jitaccess.audit.logout")
def record_logout(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if user is not None:  # logging out without a session
        session_event_record("auth.logout", user=user)


@receiver(user_login_failed, dispatch_uid="jitaccess.audit.login_failed")
def record_login_failed(sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any) -> None:
    login_failed_record(username=str(credentials.get("username", "")), reason="password")
