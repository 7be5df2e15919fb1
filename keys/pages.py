"""The security admins' key ring pages: the rings, one ring's key versions and secrets, and
"Rotate now".

Metadata only: no page reads a wrapped key, a check value or an envelope from the database, so
none can show one. Rotation goes through keys.services.keyring_rotate, which audits it and
schedules the rewrap; it asks for a recent re-authentication first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET

from jitaccess import clock
from jitaccess.accounts.reauth import reauth_fresh, reauth_url
from jitaccess.errors import NotAllowed, Unavailable
from jitaccess.web.access import security_admin_page
from jitaccess.web.outcomes import object_or_404
from jitaccess.web.paging import CursorForm, keyset_page, page_links
from keys import selectors, services
from keys.models import KeyRing, KeyState, KeyVersion

# Everything a page shows of a key version; never ``wrapped_key`` or ``check_value``.
VERSION_FIELDS = ("id", "keyring_id", "version", "state", "created_at", "archived_at", "destroyed_at")
SECRET_FIELDS = ("id", "keyring_id", "name", "kind", "updated_at")


def _ring(user: Any, pk: int) -> KeyRing:
    return object_or_404(selectors.keyrings_visible_to(user).prefetch_related(None), pk, "key ring")


@security_admin_page
@require_GET
def keyring_list(request: HttpRequest) -> HttpResponse:
    primary = KeyVersion.objects.filter(keyring=OuterRef("pk"), state=KeyState.PRIMARY).values("version")[:1]
    keyrings = (
        selectors.keyrings_visible_to(request.user)
        .prefetch_related(None)  # the versions (and their wrapped material) are not needed here
        .annotate(primary_version=Subquery(primary), secret_count=Count("secrets"))
        .order_by("name")
    )
    return render(request, "security/keyrings.html", {"keyrings": keyrings, "now": clock.now()})


@dataclass(frozen=True)
class VersionRow:
    version: KeyVersion
    rotated_at: datetime | None  # when a newer version replaced it as primary
    references: int  # data keys still wrapped by it


def version_rows(keyring: KeyRing) -> list[VersionRow]:
    versions = list(KeyVersion.objects.filter(keyring=keyring).only(*VERSION_FIELDS).order_by("-version"))
    references = selectors.key_version_references(keyring)
    created = {version.version: version.created_at for version in versions}
    return [
        VersionRow(version, created.get(version.version + 1), references.get(version.version, 0))
        for version in versions
    ]


class RotateForm(forms.Form):
    confirm = forms.BooleanField(
        label="Yes, make a new primary key version now",
        error_messages={"required": "Tick the box to confirm the rotation."},
        help_text="The current primary keeps decrypting; secrets move to the new version in the background.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


def _detail(
    request: HttpRequest, keyring: KeyRing, *, form: RotateForm | None = None, problem: str = "", status: int = 200
) -> HttpResponse:
    paging = CursorForm(request.GET)
    versions = version_rows(keyring)
    context: dict[str, Any] = {
        "keyring": keyring,
        "versions": versions,
        # Every secret's data key is wrapped by exactly one version.
        "secret_count": sum(row.references for row in versions),
        "form": form or RotateForm(),
        "problem": problem,
        "now": clock.now(),
        "paging_problems": [],
    }
    if not paging.is_valid():
        context["paging_problems"] = paging.problems()
        return render(request, "security/keyring.html", context, status=400)
    secrets: QuerySet = (
        selectors.secrets_visible_to(request.user).filter(keyring=keyring).select_related(None).only(*SECRET_FIELDS)
    )
    page = keyset_page(secrets, key="id", cursor=paging.cursor(), newest_first=True)
    context.update(secrets=page.rows, links=page_links(request, page))
    return render(request, "security/keyring.html", context, status=status)


@security_admin_page
@require_GET
def keyring_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _detail(request, _ring(request.user, pk))


@security_admin_page
def keyring_rotate_page(request: HttpRequest, pk: int) -> HttpResponse:
    """POST only does anything; a GET (the way back from re-authenticating) shows the ring's form."""
    keyring = _ring(request.user, pk)
    if request.method != "POST":
        return redirect(reverse("keyrings:detail", args=[keyring.pk]) + "#rotate")
    if not reauth_fresh(request):
        return redirect(reauth_url(request))
    form = RotateForm(request.POST)
    if not form.is_valid():
        return _detail(request, keyring, form=form, status=400)
    try:
        new = services.keyring_rotate(keyring, acting_user=request.user)
    except NotAllowed as exc:
        raise PermissionDenied(exc.detail) from None
    except Unavailable as exc:
        return _detail(request, keyring, form=form, problem=exc.detail, status=exc.status_code)
    messages.success(
        request,
        f"Key ring {keyring.name} rotated: version {new.version} is now primary. "
        "Its secrets are being re-wrapped under it in the background.",
    )
    return redirect("keyrings:detail", pk=keyring.pk)
