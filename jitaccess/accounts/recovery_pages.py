"""The security admins' page for helping someone back in: the sign-ins locked now, lifting a
lockout, and resetting a lost authenticator app (jitaccess/accounts/recovery.py).

Both actions ask for a recent re-authentication first and keep what was typed through the detour.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from jitaccess import clock
from jitaccess.accounts.forms import HelpBackInForm
from jitaccess.accounts.reauth import reauth_detour, reauth_draft_take, reauth_fresh
from jitaccess.accounts.recovery import lockouts_active, second_factor_reset, signin_unlock
from jitaccess.errors import InvalidInput, NotAllowed
from jitaccess.web.access import security_admin_page

UNLOCK, RESET = "unlock", "reset"
ACTIONS = {
    UNLOCK: (signin_unlock, "Sign-in of {name} unlocked ({count} lockout record{s} cleared)."),
    RESET: (second_factor_reset, "{name}'s authenticator app removed; they set up a new one at their next sign-in."),
}

UNLOCK_LEAD = "Clears the failed attempts of that user name from every address, so they can sign in at once."
RESET_LEAD = (
    "For a lost or replaced phone: removes every authenticator app of that person. They sign in with their "
    "password next time and set up a new app; where their group requires one, before anything else. You cannot "
    "reset your own."
)


def _page(
    request: HttpRequest, forms: dict[str, HelpBackInForm], *, status: int = 200, problem: str = ""
) -> HttpResponse:
    sections = [
        (forms[UNLOCK], UNLOCK, "Unlock a sign-in", UNLOCK_LEAD, "Unlock"),
        (forms[RESET], RESET, "Reset an authenticator app", RESET_LEAD, "Remove their authenticator app"),
    ]
    context = {"lockouts": lockouts_active(now=clock.now()), "forms": sections, "problem": problem}
    return render(request, "security/people.html", context, status=status)


def _blank_forms() -> dict[str, HelpBackInForm]:
    return {UNLOCK: HelpBackInForm(prefix=UNLOCK), RESET: HelpBackInForm(prefix=RESET)}


@security_admin_page
def people_page(request: HttpRequest) -> HttpResponse:
    """GET: the locked sign-ins and the two forms (back from re-authenticating, with the draft).
    POST: unlock or reset, as ``action`` says, after a recent re-authentication."""
    forms = _blank_forms()
    if request.method != "POST":
        draft = reauth_draft_take(request)
        if draft is not None and draft.get("action") in ACTIONS:
            forms[draft["action"]] = HelpBackInForm(draft, prefix=draft["action"])
        return _page(request, forms)
    action = request.POST.get("action")
    if action not in ACTIONS:
        return _page(request, forms, status=400, problem="Nothing was changed: choose unlock or reset.")
    if not reauth_fresh(request):
        return reauth_detour(request)
    form = forms[action] = HelpBackInForm(request.POST, prefix=action)
    if not form.is_valid():
        return _page(request, forms, status=400)
    service, done = ACTIONS[action]
    name = form.cleaned_data["username"]
    try:
        count = service(username=name, acting_user=request.user, reason=form.cleaned_data["reason"])
    except NotAllowed as exc:
        raise PermissionDenied(exc.detail) from None
    except InvalidInput as exc:
        form.add_error(exc.field if exc.field in form.fields else None, exc.detail)
        return _page(request, forms, status=400)
    messages.success(request, done.format(name=name, count=count, s="" if count == 1 else "s"))
    return redirect("people:list")
