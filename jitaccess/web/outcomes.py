"""How a page answers a service's refusal: beside the field it concerns, on the form, or as the
403 / 404 page. The services decide and audit; this only chooses where the words go."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django import forms
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404

from jitaccess.audit.filters import BIGINT_MAX
from jitaccess.errors import DomainError, InvalidInput, NotAllowed, NotFound


def refusal_shown(form: forms.Form, error: DomainError, *, fields: Mapping[str, str] | None = None) -> int:
    """Put ``error`` on ``form`` and return the status to answer with.

    ``fields`` maps a service's field name to the form's where they differ. A refusal for the
    caller's role is the 403 page (it says why); a vanished object is the 404 page.
    """
    refusal_for_person_raise(error)
    if isinstance(error, InvalidInput):
        name = (fields or {}).get(error.field, error.field)
        form.add_error(name if name in form.fields else None, error.detail)
        return 400
    form.add_error(None, error.detail)
    return error.status_code


def refusal_for_person_raise(error: DomainError) -> None:
    """Raise the 403 page for a refusal of the person (it says why) and the 404 page for an
    object that is not there; any other refusal is the caller's to show."""
    if isinstance(error, NotAllowed):
        raise PermissionDenied(error.detail)
    if isinstance(error, NotFound):
        raise Http404(error.detail)


def object_or_404(qs: QuerySet, pk: int, what: str) -> Any:
    """The row of ``qs`` (already scoped to the person) with this id, or the 404 page: a row they
    may not see is not found, exactly like one that does not exist."""
    found = qs.filter(pk=pk).first() if pk <= BIGINT_MAX else None
    if found is None:
        raise Http404(f"No such {what}.")
    return found
