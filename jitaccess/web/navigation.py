"""The header's links, by role: each role sees the pages it may open and nothing else."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest
from django.urls import reverse
from django.utils.functional import SimpleLazyObject

from jitaccess.roles import is_auditor
from jitaccess.web.access import signed_in


@dataclass(frozen=True)
class NavLink:
    label: str
    url: str
    current: bool = False


def _links(request: HttpRequest) -> list[NavLink]:
    if not signed_in(request):
        return []
    user = request.user
    entries: list[tuple[str, str]] = []
    if is_auditor(user):
        entries += [
            ("Audit events", reverse("audit:events")),
            ("Configuration changes", reverse("audit:changes")),
            ("Reports", reverse("audit:reports")),
            ("Verification", reverse("audit:verify")),
        ]
    if user.is_staff:
        entries.append(("Admin", reverse("admin:index")))
    entries.append(("API docs", reverse("api-docs")))
    # The longest link that the path starts with is the section the page belongs to.
    matches = [url for _, url in entries if request.path.startswith(url)]
    current = max(matches, key=len) if matches else None
    return [NavLink(label, url, url == current) for label, url in entries]


def navigation(request: HttpRequest) -> dict[str, Any]:
    """Context processor. Lazy, so pages that show no header (the admin) cost no query."""
    return {"nav_links": SimpleLazyObject(lambda: _links(request))}
