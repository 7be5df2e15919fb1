"""Single sign-on pages: start a sign-in or a re-authentication at the provider, take its answer
back, and ask the authenticator code when the provider's sign-in does not stand in for it.

Both flows share one callback URL (the one registered at the provider); what each was started
for is kept in the session under its ``state``, which works once.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model, login
from django.db import IntegrityError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views import View
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods
from django_otp import login as otp_login
from django_otp.plugins.otp_totp.models import TOTPDevice
from mozilla_django_oidc.views import OIDCAuthenticationRequestView

from jitaccess.accounts.forms import CodeForm
from jitaccess.accounts.middleware import PROVIDER_MFA_SESSION_KEY
from jitaccess.accounts.oidc_backend import CLOCK_SKEW, OIDC_BACKEND, OIDCBackend, OIDCRefused, provider_mfa_shown
from jitaccess.accounts.oidc_services import (
    oidc_account_for,
    oidc_failed_record,
    oidc_sign_in_complete,
    provider_groups_of,
)
from jitaccess.accounts.pages import safe_next
from jitaccess.accounts.reauth import reauth_mark
from jitaccess.accounts.selectors import confirmed_totp_device, oidc_identity_of
from jitaccess.accounts.services import login_failed_record, reauth_failed_record, reauth_record, totp_code_problem
from jitaccess.accounts.signin_audit import SIGN_IN_DETAILS_ATTRIBUTE
from jitaccess.web.access import signed_in

# state -> {"purpose": "login" | "reauth", "next": path, "user": pk, "started": epoch seconds}
FLOWS_SESSION_KEY = "jit_oidc_flows"
# A provider sign-in waiting for the authenticator code: {"purpose", "user", "next", "at", "groups"}.
PENDING_SESSION_KEY = "jit_oidc_pending"
# How long the code may follow the provider's answer.
PENDING_SECONDS = 300
SIGN_IN_FAILED = "Signing in with {provider} did not work. Try again, or ask an administrator."
REAUTH_FAILED = "Confirming with {provider} did not work: sign in there again, as yourself."


def _provider() -> str:
    return settings.JIT_OIDC_PROVIDER_NAME


class SignInStartView(OIDCAuthenticationRequestView):
    """Send the browser to the provider to sign in (mozilla-django-oidc's request, with PKCE and
    a nonce), remembering where to go afterwards."""

    purpose = "login"

    def get(self, request: HttpRequest) -> HttpResponse:
        response = super().get(request)
        state = parse_qs(urlsplit(response["Location"]).query)["state"][0]
        states = request.session.get("oidc_states") or {}
        # Only flows whose state mozilla-django-oidc still keeps (it keeps the newest 50).
        flows = {key: value for key, value in (request.session.get(FLOWS_SESSION_KEY) or {}).items() if key in states}
        flows[state] = {
            "purpose": self.purpose,
            "next": safe_next(request, request.GET.get("next")) or "",
            "user": request.user.pk if request.user.is_authenticated else None,
            "started": time.time(),
        }
        request.session[FLOWS_SESSION_KEY] = flows
        request.session.pop("oidc_login_next", None)
        return response


class ReauthStartView(SignInStartView):
    """Re-authentication through the provider, for the **Confirm it is you** page: the provider
    is asked to sign the person in again now (``prompt=login``, ``max_age=0``), and the callback
    checks that it did (``auth_time``)."""

    purpose = "reauth"

    def get(self, request: HttpRequest) -> HttpResponse:
        if not signed_in(request):
            return redirect("login")
        if oidc_identity_of(request.user) is None:
            messages.error(request, f"Your account is not linked to {_provider()}: confirm with your password.")
            return redirect(_reauth_page(request.GET.get("next", "")))
        return super().get(request)

    def get_extra_params(self, request: HttpRequest) -> dict[str, str]:
        return {"prompt": "login", "max_age": "0"}


class CallbackView(View):
    """The provider's answer: check the state, redeem the code, verify the ID token, then sign in
    (or re-authenticate). Every refusal is audited."""

    http_method_names = ["get"]

    def get(self, request: HttpRequest) -> HttpResponse:
        state = request.GET.get("state", "")
        states = request.session.get("oidc_states") or {}
        flows = request.session.get(FLOWS_SESSION_KEY) or {}
        started, flow = states.pop(state, None), flows.pop(state, None)
        # One use: a replayed answer finds nothing.
        request.session["oidc_states"], request.session[FLOWS_SESSION_KEY] = states, flows
        if not started or not flow:
            oidc_failed_record(action="auth.login_failed", reason="state")
            messages.error(request, SIGN_IN_FAILED.format(provider=_provider()))
            return redirect("login")
        reauth = flow["purpose"] == "reauth"
        try:
            if request.GET.get("error") or not request.GET.get("code"):
                raise OIDCRefused("provider_error", request.GET.get("error", "no code")[:64])
            claims = OIDCBackend().provider_claims(
                request, code=request.GET["code"], nonce=started["nonce"], code_verifier=started.get("code_verifier")
            )
        except OIDCRefused as refused:
            return self._refused(request, flow, refused, claims=None)
        return self._reauthenticate(request, flow, claims) if reauth else self._sign_in(request, flow, claims)

    def _refused(self, request: HttpRequest, flow: dict, refused: OIDCRefused, *, claims: dict | None) -> HttpResponse:
        if flow["purpose"] == "reauth" and request.user.is_authenticated:
            oidc_failed_record(action="auth.reauth_failed", reason=refused.reason, claims=claims, user=request.user)
            messages.error(request, REAUTH_FAILED.format(provider=_provider()))
            return redirect(_reauth_page(flow["next"]))
        oidc_failed_record(action="auth.login_failed", reason=refused.reason, claims=claims)
        messages.error(request, SIGN_IN_FAILED.format(provider=_provider()))
        return redirect("login")

    def _sign_in(self, request: HttpRequest, flow: dict, claims: dict) -> HttpResponse:
        try:
            groups = provider_groups_of(claims)
            user = oidc_account_for(claims=claims)
        except OIDCRefused as refused:
            return self._refused(request, flow, refused, claims=claims)
        except IntegrityError:  # the same first sign-in twice at once: the other one made the account
            return self._refused(request, flow, OIDCRefused("conflict"), claims=claims)
        provider_mfa = provider_mfa_shown(claims)
        if not provider_mfa and TOTPDevice.objects.filter(user=user, confirmed=True).exists():
            return _ask_code(request, purpose="login", user=user, next_url=flow["next"], groups=groups)
        second_factor = "provider" if provider_mfa else None
        return sign_in_complete(request, user, groups=groups, second_factor=second_factor, next_url=flow["next"])

    def _reauthenticate(self, request: HttpRequest, flow: dict, claims: dict) -> HttpResponse:
        user = request.user
        if not user.is_authenticated or user.pk != flow["user"]:
            return self._refused(request, {**flow, "purpose": "login"}, OIDCRefused("session_changed"), claims=claims)
        identity = oidc_identity_of(user)
        if identity is None or identity.subject != claims["sub"]:
            return self._refused(request, flow, OIDCRefused("other_identity"), claims=claims)
        auth_time = claims.get("auth_time")
        # The provider must have signed the person in after this flow started, not reused a session.
        if not isinstance(auth_time, (int, float)) or not (
            flow["started"] - CLOCK_SKEW <= auth_time <= time.time() + CLOCK_SKEW
        ):
            return self._refused(request, flow, OIDCRefused("not_fresh"), claims=claims)
        provider_mfa = provider_mfa_shown(claims)
        if not provider_mfa and TOTPDevice.objects.filter(user=user, confirmed=True).exists():
            return _ask_code(request, purpose="reauth", user=user, next_url=flow["next"])
        return _reauth_complete(request, second_factor=provider_mfa, next_url=flow["next"])


def sign_in_complete(
    request: HttpRequest, user: Any, *, groups: list[str], second_factor: str | None, next_url: str
) -> HttpResponse:
    """Sync the mapped groups and open the session: auth.login records the method and the second
    factor used."""
    try:
        oidc_sign_in_complete(user, provider_groups=groups)
    except OIDCRefused as refused:
        oidc_failed_record(action="auth.login_failed", reason=refused.reason, user=user)
        messages.error(request, SIGN_IN_FAILED.format(provider=_provider()))
        return redirect("login")
    setattr(request, SIGN_IN_DETAILS_ATTRIBUTE, {"method": "oidc", "second_factor": second_factor})
    login(request, user, backend=OIDC_BACKEND)
    if second_factor == "provider":
        request.session[PROVIDER_MFA_SESSION_KEY] = user.pk
    return HttpResponseRedirect(next_url or reverse(settings.LOGIN_REDIRECT_URL))


def _reauth_complete(request: HttpRequest, *, second_factor: bool, next_url: str) -> HttpResponse:
    """The same stamp, event and timeout as the password's re-authentication; back to the page
    that asked, whose draft waits in the session."""
    reauth_mark(request)
    reauth_record(user=request.user, second_factor=second_factor, method="oidc")
    return HttpResponseRedirect(next_url or reverse("account:home"))


def _reauth_page(next_url: str) -> str:
    return f"{reverse('account:reauth')}?{urlencode({'next': next_url})}"


def _ask_code(
    request: HttpRequest, *, purpose: str, user: Any, next_url: str, groups: list[str] | None = None
) -> HttpResponse:
    request.session[PENDING_SESSION_KEY] = {
        "purpose": purpose,
        "user": user.pk,
        "next": next_url,
        "at": time.time(),
        "groups": groups or [],
    }
    return redirect("oidc-code")


def _pending(request: HttpRequest) -> tuple[dict, Any] | None:
    pending = request.session.get(PENDING_SESSION_KEY)
    if not isinstance(pending, dict) or not 0 <= time.time() - pending.get("at", 0) <= PENDING_SECONDS:
        return None
    if pending["purpose"] == "reauth" and request.user.pk != pending["user"]:
        return None
    user = get_user_model().objects.filter(pk=pending["user"], is_active=True).first()
    return (pending, user) if user is not None else None


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def code_step(request: HttpRequest) -> HttpResponse:
    """The authenticator code after the provider, from a person who has an app, unless a trusted
    provider's multi-factor sign-in stands in for it. A wrong code is audited as the password
    sign-in's and re-authentication's are, and slowed by django-otp's growing wait."""
    found = _pending(request)
    if found is None:
        request.session.pop(PENDING_SESSION_KEY, None)
        messages.error(request, f"That sign-in has ended. Sign in with {_provider()} again.")
        return redirect("login")
    pending, user = found
    form = CodeForm(request.POST if request.method == "POST" else None)
    if request.method != "POST":
        return render(request, "account/oidc_code.html", {"form": form, "provider": _provider()})
    if form.is_valid():
        devices = list(TOTPDevice.objects.filter(user=user, confirmed=True))
        problem = totp_code_problem(devices, form.cleaned_data["code"])
        if problem is None:
            del request.session[PENDING_SESSION_KEY]
            if pending["purpose"] == "reauth":
                return _reauth_complete(request, second_factor=True, next_url=pending["next"])
            response = sign_in_complete(
                request, user, groups=pending["groups"], second_factor="totp", next_url=pending["next"]
            )
            if request.user.is_authenticated:
                otp_login(request, confirmed_totp_device(user))
            return response
        if pending["purpose"] == "reauth":
            reauth_failed_record(user=user, reason="second_factor", method="oidc")
        else:
            login_failed_record(username=user.get_username(), reason="second_factor", method="oidc")
        form.add_error("code", problem)
    return render(request, "account/oidc_code.html", {"form": form, "provider": _provider()}, status=400)
