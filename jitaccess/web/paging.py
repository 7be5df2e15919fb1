"""Keyset pages for the browser lists: "older" and "newer" links keyed by a unique, increasing
column (an event's ``seq``, a change's ``id``).

Each page is one indexed range read with a LIMIT, plus one EXISTS probe for the other
direction: no OFFSET and no COUNT, however long the table grows, and no page repeats or skips a
row while new rows arrive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django import forms
from django.db.models import QuerySet
from django.http import HttpRequest

from jitaccess.audit.filters import BIGINT_MAX

PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
CURSOR_PARAMETERS = ("before", "after")


class CursorForm(forms.Form):
    before = forms.IntegerField(required=False, min_value=1, max_value=BIGINT_MAX)
    after = forms.IntegerField(required=False, min_value=0, max_value=BIGINT_MAX)
    page_size = forms.IntegerField(required=False, min_value=1, max_value=MAX_PAGE_SIZE)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if cleaned.get("before") is not None and cleaned.get("after") is not None:
            raise forms.ValidationError("A page is either before or after a row, not both.")
        return cleaned

    def cursor(self) -> Cursor:
        data = self.cleaned_data
        return Cursor(before=data.get("before"), after=data.get("after"), size=data.get("page_size") or PAGE_SIZE)

    def problems(self) -> list[str]:
        """Every error in one list: the cursor has no visible field to put them beside."""
        return [
            f"{name}: {message}" if name != "__all__" else message
            for name, errors in self.errors.items()
            for message in errors
        ]


@dataclass(frozen=True)
class Cursor:
    before: int | None = None  # rows with a key below this
    after: int | None = None  # rows with a key above this
    size: int = PAGE_SIZE


@dataclass(frozen=True)
class KeysetPage:
    rows: list[Any]  # in display order
    older: int | None  # ``before`` of the older page, None when nothing is older
    newer: int | None  # ``after`` of the newer page, None when nothing is newer


def keyset_page(qs: QuerySet, *, key: str, cursor: Cursor, newest_first: bool) -> KeysetPage:
    """One page of ``qs``. Without a cursor a newest-first list starts at the newest row and an
    oldest-first one (a timeline) at the oldest."""
    if cursor.after is not None or (cursor.before is None and not newest_first):
        above = qs if cursor.after is None else qs.filter(**{f"{key}__gt": cursor.after})
        rows = list(above.order_by(key)[: cursor.size + 1])
        more_newer = len(rows) > cursor.size
        rows = rows[: cursor.size]
        more_older = cursor.after is not None and qs.filter(**{f"{key}__lte": cursor.after}).exists()
    else:
        below = qs if cursor.before is None else qs.filter(**{f"{key}__lt": cursor.before})
        rows = list(below.order_by(f"-{key}")[: cursor.size + 1])
        more_older = len(rows) > cursor.size
        rows = rows[: cursor.size][::-1]
        more_newer = cursor.before is not None and qs.filter(**{f"{key}__gte": cursor.before}).exists()
    # ``rows`` ascend by key here.
    older = getattr(rows[0], key) if rows and more_older else None
    newer = getattr(rows[-1], key) if rows and more_newer else None
    if not rows:
        # An empty page (a cursor past either end) still leads back to the rows beyond it.
        older = cursor.after + 1 if more_older and cursor.after is not None else None
        newer = cursor.before - 1 if more_newer and cursor.before is not None else None
    return KeysetPage(rows[::-1] if newest_first else rows, older, newer)


@dataclass(frozen=True)
class PageLinks:
    older: str | None
    newer: str | None


def page_links(request: HttpRequest, page: KeysetPage) -> PageLinks:
    """The older / newer links, carrying every other query parameter (the filters, page_size)."""

    def link(parameter: str, value: int | None) -> str | None:
        if value is None:
            return None
        query = request.GET.copy()
        for name in CURSOR_PARAMETERS:
            query.pop(name, None)
        query[parameter] = str(value)
        return "?" + query.urlencode()

    return PageLinks(older=link("before", page.older), newer=link("after", page.newer))
