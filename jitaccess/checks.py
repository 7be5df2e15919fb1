"""System checks that stop ``migrate``, ``runserver`` and ``check`` on weak keys or a clashing admin path.

settings.py already refuses missing, malformed and published development keys as it loads; these
catch what only looks at the value can: a short or repetitive SECRET_KEY, a key of one repeated byte.
Each message is one line naming the variable to fix. Outside DEBUG only, except the admin path.
"""

from __future__ import annotations

import base64
from typing import Any

from django.conf import settings
from django.core.checks import Error, register
from django.urls import URLPattern, URLResolver, get_resolver

SECRET_KEY_MIN_LENGTH = 50
SECRET_KEY_MIN_CHARACTERS = 5
# 32 random bytes have about 30 distinct values; fewer than 8 is a pattern, not a key.
KEY_MIN_DISTINCT_BYTES = 8


def _weak_secret_key(value: str) -> str | None:
    if value == settings.DEV_SECRET_KEY or value.startswith("django-insecure-"):
        return "is a published development value"
    if len(value) < SECRET_KEY_MIN_LENGTH:
        return f"is {len(value)} characters long; use at least {SECRET_KEY_MIN_LENGTH}"
    if len(set(value)) < SECRET_KEY_MIN_CHARACTERS:
        return f"uses fewer than {SECRET_KEY_MIN_CHARACTERS} different characters"
    return None


def _weak_key(value: bytes, dev_default: str) -> str | None:
    if value == base64.b64decode(dev_default):
        return "is the published development key"
    if len(set(value)) < KEY_MIN_DISTINCT_BYTES:
        return f"has fewer than {KEY_MIN_DISTINCT_BYTES} different bytes (a repeated pattern, not a random key)"
    return None


@register()
def check_keys(app_configs: Any, **kwargs: Any) -> list[Error]:
    if settings.DEBUG:
        return []
    errors = []
    problem = _weak_secret_key(settings.SECRET_KEY)
    if problem:
        errors.append(
            Error(f"DJANGO_SECRET_KEY {problem}; generate a long random one", id="jitaccess.E001"),
        )
    for name, value, dev_default, code in (
        ("JIT_ROOT_KEY", settings.JIT_ROOT_KEY, settings.DEV_ROOT_KEY, "jitaccess.E002"),
        ("JIT_AUDIT_SIGNING_KEY", settings.JIT_AUDIT_SIGNING_KEY, settings.DEV_AUDIT_SIGNING_KEY, "jitaccess.E003"),
    ):
        problem = _weak_key(value, dev_default)
        if problem:
            errors.append(Error(f"{name} {problem}; generate 32 random bytes", id=code))
    return errors


def _first_segments(patterns: list[URLPattern | URLResolver]) -> set[str]:
    """The first path segment of every route, looking through includes mounted at the root."""
    segments = set()
    for pattern in patterns:
        route = str(pattern.pattern).lstrip("^")
        if isinstance(pattern, URLResolver) and route == "":
            segments |= _first_segments(pattern.url_patterns)
        elif route:
            segments.add(route.split("/", 1)[0])
    return segments


@register()
def check_admin_path(app_configs: Any, **kwargs: Any) -> list[Error]:
    admin_path = settings.JIT_ADMIN_PATH
    first = admin_path.split("/", 1)[0]
    others = [p for p in get_resolver().url_patterns if str(p.pattern) != admin_path]
    taken = _first_segments(others) | {settings.STATIC_URL.strip("/").split("/", 1)[0]}
    if first in taken:
        return [
            Error(
                f"JIT_ADMIN_PATH {admin_path!r} starts with {first + '/'!r}, which the application's own pages use; "
                "choose another prefix",
                id="jitaccess.E010",
            )
        ]
    return []


def refuse_weak_keys() -> None:
    """The key checks for the processes that run no system checks (gunicorn, the Celery worker and
    beat): a weak key stops them with the same one line."""
    from django.core.exceptions import ImproperlyConfigured

    errors = check_keys(None)
    if errors:
        raise ImproperlyConfigured(errors[0].msg)


@register()
def check_oidc_group_map(app_configs: Any, **kwargs: Any) -> list[Error]:
    """The single sign-on group map may not name a security group: only grants add people there.

    It needs the database, so it cannot run as the settings load; a database not there yet (the
    first migrate) leaves it to the sign-in, which refuses such a map every time.
    """
    if not settings.JIT_OIDC_ENABLED or not settings.JIT_OIDC_GROUP_MAP:
        return []
    from django.db import DatabaseError

    from jitaccess.accounts.selectors import protected_group_targets

    try:
        protected = protected_group_targets()
    except DatabaseError:
        return []
    if protected:
        return [
            Error(
                f"JIT_OIDC_GROUP_MAP maps to the security group(s) {', '.join(protected)}; "
                "only grants may add people there: remove them from the map",
                id="jitaccess.E011",
            )
        ]
    return []


def refuse_protected_group_map() -> None:
    """The group map check for gunicorn, which runs no system checks: one line, and no start."""
    from django.core.exceptions import ImproperlyConfigured

    errors = check_oidc_group_map(None)
    if errors:
        raise ImproperlyConfigured(errors[0].msg)
