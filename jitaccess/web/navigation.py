"""The header's links, by role: each role sees the pages it may open and nothing else."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest
from django.urls import reverse
from django.utils.functional import SimpleLazyObject

from approvals.selectors import approver_of_any_stage, grants_held_by
from jitaccess import clock
from jitaccess.roles import DATACENTER_ADMINS, group_names, is_auditor, is_security_admin
from jitaccess.web.access import signed_in
from jitaccess.webhooks.selectors import failed_deliveries_count


@dataclass(frozen=True)
class NavLink:
    label: str
    url: str
    current: bool = False


def _entries(user: Any) -> list[tuple[str, str, tuple[str, ...]]]:
    """(label, url, the other path prefixes of the section) for each page the user may open."""
    entries: list[tuple[str, str, tuple[str, ...]]] = []
    if DATACENTER_ADMINS in group_names(user) or grants_held_by(user, at=clock.now()).exists():
        entries.append(("My access", reverse("approvals:dashboard"), ("/requests/", "/grants/")))
    if approver_of_any_stage(user):
        entries.append(("Approvals", reverse("approvals:inbox"), ()))
    if is_auditor(user):
        entries += [
            ("Audit events", reverse("audit:events"), ()),
            ("Configuration changes", reverse("audit:changes"), ()),
            ("Reports", reverse("audit:reports"), ()),
            ("Verification", reverse("audit:verify"), ()),
        ]
    if is_security_admin(user):
        entries += [
            ("Entitlements", reverse("security:entitlements"), ()),
            ("Key rings", reverse("keyrings:list"), ()),
            ("Active grants", reverse("security:grants"), ()),
            ("Service tokens", reverse("service-tokens:list"), ()),
            (_webhooks_label(user), reverse("webhooks:list"), ()),
            ("People", reverse("people:list"), ()),
        ]
    if user.is_staff:
        entries.append(("Admin", reverse("admin:index"), ()))
    entries.append(("Account", reverse("account:home"), ()))
    entries.append(("API docs", reverse("api-docs"), ()))
    return entries


def _webhooks_label(user: Any) -> str:
    # Failed deliveries are counted in the header, so a receiver that stopped answering is seen
    # on whichever page a security admin opens.
    failed = failed_deliveries_count(user)
    return f"Webhooks ({failed} failed)" if failed else "Webhooks"


def _links(request: HttpRequest) -> list[NavLink]:
    if not signed_in(request):
        return []
    entries = _entries(request.user)
    # The longest prefix that the path starts with names the section the page belongs to.
    prefixes = [(prefix, url) for _, url, more in entries for prefix in (url, *more)]
    matches = [(prefix, url) for prefix, url in prefixes if request.path.startswith(prefix)]
    current = max(matches, key=lambda match: len(match[0]))[1] if matches else None
    return [NavLink(label, url, url == current) for label, url, _ in entries]


def navigation(request: HttpRequest) -> dict[str, Any]:
    """Context processor. Lazy, so pages that show no header (the admin) cost no query."""
    return {"nav_links": SimpleLazyObject(lambda: _links(request))}
