"""The account pages: the person's own account, their authenticator app, and re-authentication."""

from __future__ import annotations

from base64 import b32encode
from typing import Any

import segno
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp import login as otp_login
from django_otp.plugins.otp_totp.models import TOTPDevice

from jitaccess.accounts.forms import CodeForm, ReauthForm
from jitaccess.accounts.reauth import reauth_fresh, reauth_url, reauthenticate
from jitaccess.accounts.selectors import confirmed_totp_device, groups_requiring_totp, oidc_identity_of
from jitaccess.accounts.services import (
    totp_device_remove,
    totp_enrolment_confirm,
    totp_enrolment_start,
    totp_replacement_start,
)
from jitaccess.errors import Conflict, InvalidInput, NotAllowed
from jitaccess.web.access import person_page

# The unconfirmed device this session is setting up: its secret is shown only to this session.
PENDING_SESSION_KEY = "jit_totp_pending"
# The same id, once a code of the current device allowed replacing it with that one.
REPLACING_SESSION_KEY = "jit_totp_replacing"


def safe_next(request: HttpRequest, candidate: str | None) -> str | None:
    """``candidate`` when it is a path on this site, else None: never a redirect elsewhere."""
    if not candidate or not candidate.startswith("/") or candidate.startswith("//"):
        return None
    allowed = url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return candidate if allowed else None


# --- the account ---------------------------------------------------------------------------------


@person_page("GET", "HEAD")
def account_home(request: HttpRequest) -> HttpResponse:
    user = request.user
    return render(
        request,
        "account/home.html",
        {
            "groups": sorted(user.groups.values_list("name", flat=True)),
            "device": confirmed_totp_device(user),
            "required_by": groups_requiring_totp(user),
        },
    )


# --- the authenticator app -----------------------------------------------------------------------


def _pending_device(request: HttpRequest) -> TOTPDevice | None:
    pending_id = request.session.get(PENDING_SESSION_KEY)
    if not isinstance(pending_id, int):
        return None
    return TOTPDevice.objects.filter(pk=pending_id, user=request.user, confirmed=False).first()


def _qr_svg(device: TOTPDevice) -> str:
    # Drawn here, as inline SVG: the secret never leaves for an image service or a file.
    qr = segno.make(device.config_url, error="m", micro=False)
    svg = qr.svg_inline(scale=5, border=4, dark="#000000", light="#ffffff", svgclass="totp-qr__code")
    return mark_safe(svg)  # noqa: S308 — segno's own markup, the URI is encoded as modules, not text


def _secret_groups(device: TOTPDevice) -> str:
    secret = b32encode(device.bin_key).decode().rstrip("=")
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def _two_factor_page(
    request: HttpRequest,
    *,
    confirm_form: CodeForm | None = None,
    replace_form: CodeForm | None = None,
    remove_form: CodeForm | None = None,
    status: int = 200,
) -> HttpResponse:
    user = request.user
    device = confirmed_totp_device(user)
    pending = _pending_device(request)
    if device is not None and pending is not None and request.session.get(REPLACING_SESSION_KEY) != pending.pk:
        pending = None  # a set-up overtaken by a device confirmed elsewhere: replacing needs a code
    if device is None and pending is None:
        # Creating the unconfirmed device on the first visit is safe: until a code confirms it,
        # it counts nowhere (sign-in and the API ignore unconfirmed devices).
        pending = totp_enrolment_start(user=user)
        request.session[PENDING_SESSION_KEY] = pending.pk
    required_by = groups_requiring_totp(user)
    context: dict[str, Any] = {
        "device": device,
        "pending": pending,
        "required_by": required_by,
        "next": safe_next(request, request.POST.get("next") or request.GET.get("next")) or "",
        "confirm_form": confirm_form or CodeForm(prefix="confirm", label="Code from the app, to confirm"),
        "replace_form": replace_form or CodeForm(prefix="replace", label="Current code from your app"),
        "remove_form": remove_form or CodeForm(prefix="remove", label="Current code from your app"),
    }
    if pending is not None:
        context["qr_svg"] = _qr_svg(pending)
        context["secret"] = _secret_groups(pending)
    return render(request, "account/two_factor.html", context, status=status)


@person_page("GET", "HEAD", "POST")
def two_factor(request: HttpRequest) -> HttpResponse:
    """Set up an authenticator app (or finish replacing one): scan, then confirm with a code.

    A first set-up needs a fresh re-authentication before the key is shown: otherwise whoever
    holds a stolen session could bind their own app to the account and lock its owner out. (A
    replacement is started with a code from the current app, which proves as much.)
    """
    if confirmed_totp_device(request.user) is None and not reauth_fresh(request):
        return redirect(reauth_url(request))
    if request.method != "POST":
        return _two_factor_page(request)
    form = CodeForm(request.POST, prefix="confirm", label="Code from the app, to confirm")
    pending = _pending_device(request)
    if pending is None:
        messages.error(request, "That set-up has ended. Scan the new code below and confirm it.")
        return redirect("account:two-factor")
    if not form.is_valid():
        return _two_factor_page(request, confirm_form=form, status=400)
    replacing = request.session.get(REPLACING_SESSION_KEY) == pending.pk
    try:
        device = totp_enrolment_confirm(pending, user=request.user, code=form.cleaned_data["code"], replacing=replacing)
    except InvalidInput as problem:
        form.add_error(problem.field, problem.detail)
        return _two_factor_page(request, confirm_form=form, status=400)
    except Conflict as problem:
        messages.error(request, problem.detail)
        return redirect("account:two-factor")
    request.session.pop(PENDING_SESSION_KEY, None)
    request.session.pop(REPLACING_SESSION_KEY, None)
    # The code just given proves presence: this session counts as verified by the new device.
    otp_login(request, device)
    messages.success(
        request,
        "Your new authenticator app replaces the old one."
        if replacing
        else "Your authenticator app is set up. Sign in with your password and a code from it from now on.",
    )
    return redirect(safe_next(request, request.POST.get("next")) or "account:home")


@person_page("POST")
def two_factor_replace(request: HttpRequest) -> HttpResponse:
    """Start moving to a new authenticator app, with a code from the current one."""
    form = CodeForm(request.POST, prefix="replace", label="Current code from your app")
    if not form.is_valid():
        return _two_factor_page(request, replace_form=form, status=400)
    try:
        pending = totp_replacement_start(user=request.user, code=form.cleaned_data["code"])
    except InvalidInput as problem:
        form.add_error(problem.field, problem.detail)
        return _two_factor_page(request, replace_form=form, status=400)
    except Conflict as problem:
        messages.error(request, problem.detail)
        return redirect("account:two-factor")
    request.session[PENDING_SESSION_KEY] = request.session[REPLACING_SESSION_KEY] = pending.pk
    return redirect("account:two-factor")


@person_page("POST")
def two_factor_cancel(request: HttpRequest) -> HttpResponse:
    """Give up a replacement half-way: the current authenticator stays as it is."""
    pending = _pending_device(request)
    request.session.pop(PENDING_SESSION_KEY, None)
    request.session.pop(REPLACING_SESSION_KEY, None)
    if pending is not None and confirmed_totp_device(request.user) is not None:
        pending.delete()  # never confirmed, never usable: nothing to audit
    return redirect("account:two-factor")


@person_page("POST")
def two_factor_remove(request: HttpRequest) -> HttpResponse:
    """Remove the authenticator app, with a current code; refused while a group requires one."""
    form = CodeForm(request.POST, prefix="remove", label="Current code from your app")
    if not form.is_valid():
        return _two_factor_page(request, remove_form=form, status=400)
    try:
        totp_device_remove(user=request.user, code=form.cleaned_data["code"])
    except NotAllowed as problem:
        raise PermissionDenied(problem.detail) from None
    except InvalidInput as problem:
        form.add_error(problem.field, problem.detail)
        return _two_factor_page(request, remove_form=form, status=400)
    except Conflict as problem:
        messages.error(request, problem.detail)
        return redirect("account:two-factor")
    for key in (DEVICE_ID_SESSION_KEY, PENDING_SESSION_KEY, REPLACING_SESSION_KEY):
        request.session.pop(key, None)
    messages.success(request, "Your authenticator app is removed. Sign in with your password alone from now on.")
    return redirect("account:home")


# --- re-authentication ---------------------------------------------------------------------------


@person_page("GET", "HEAD", "POST")
def reauth(request: HttpRequest) -> HttpResponse:
    """Confirm the password (and code) again before a sensitive action, then go back to it."""
    next_url = safe_next(request, request.POST.get("next") or request.GET.get("next"))
    needs_code = confirmed_totp_device(request.user) is not None
    form = ReauthForm(request.POST if request.method == "POST" else None, needs_code=needs_code)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            problem = reauthenticate(
                request, password=form.cleaned_data["password"], code=form.cleaned_data.get("code", "")
            )
            if problem is None:
                return redirect(next_url or "account:home")
            form.add_error(*problem)
        status = 400
    # Someone who signs in through the provider only has no password: they confirm there.
    sso = settings.JIT_OIDC_PROVIDER_NAME if oidc_identity_of(request.user) is not None else ""
    context = {
        "form": form,
        "needs_code": needs_code,
        "next": next_url or "",
        "has_password": request.user.has_usable_password(),
        "sso_provider": sso,
    }
    return render(request, "account/reauth.html", context, status=status)
