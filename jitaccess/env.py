"""Strict configuration helpers: every setting comes from the environment and fails loudly.

Secrets may be given directly (``NAME``) or as a path (``NAME_FILE``), so that container
orchestrators can mount them as files instead of leaking them into ``environ``.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str | None = None) -> str:
    value = os.environ.get(name)
    if value is None:
        if default is None:
            raise ImproperlyConfigured(f"{name} must be set")
        return default
    return value


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {raw!r}")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {value}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_secret_or_none(name: str) -> str | None:
    """The value of ``NAME``, or of the file named by ``NAME_FILE``; None when neither is set."""
    direct = os.environ.get(name)
    path = os.environ.get(f"{name}_FILE")
    if direct and path:
        raise ImproperlyConfigured(f"set only one of {name} and {name}_FILE")
    if path:
        try:
            value = Path(path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE: cannot read {path}: {exc.strerror}") from None
        if not value:
            raise ImproperlyConfigured(f"{name}_FILE: {path} is empty")
        return value
    if direct:
        return direct.strip()
    return None


def env_secret(name: str, *, dev_default: str | None, debug: bool) -> str:
    """A secret from ``NAME`` or the file named by ``NAME_FILE``.

    The development default is used only when DEBUG is on; in production a missing secret stops
    start-up with one line naming the variable. Without a development default it is required in
    DEBUG too.
    """
    value = env_secret_or_none(name)
    if value is not None:
        return value
    if dev_default is None:
        raise ImproperlyConfigured(f"{name} (or {name}_FILE) must be set")
    if debug:
        return dev_default
    raise ImproperlyConfigured(f"{name} (or {name}_FILE) must be set when DJANGO_DEBUG is off")


def env_key(name: str, *, dev_default: str, debug: bool, length: int = 32) -> bytes:
    """A binary key of ``length`` bytes, base64 in ``NAME`` or in the file named by ``NAME_FILE``.

    The development default is accepted only with DEBUG on; outside DEBUG it is refused even
    when given explicitly, so a copied demo configuration can never protect real data.
    """
    encoded = env_secret(name, dev_default=dev_default, debug=debug)
    if not debug and encoded == dev_default:
        raise ImproperlyConfigured(f"{name} is the published development key; generate a real one")
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ImproperlyConfigured(f"{name} must be base64") from None
    if len(key) != length:
        raise ImproperlyConfigured(f"{name} must decode to {length} bytes, not {len(key)}")
    return key


_RATE_PERIODS = {
    **dict.fromkeys(("s", "sec", "second"), "second"),
    **dict.fromkeys(("m", "min", "minute"), "minute"),
    **dict.fromkeys(("h", "hour"), "hour"),
    **dict.fromkeys(("d", "day"), "day"),
}


def env_rate(name: str, default: str) -> str:
    """A request rate such as ``30/min``: a positive count, a slash and a period (s, min, hour, day).

    Django REST framework reads only the period's first letter, so ``10/mango`` would pass there
    unnoticed; a typo stops start-up here instead of silently changing a security limit.
    """
    raw = env_str(name, default).strip()
    count, _, period = raw.partition("/")
    if not (count.isascii() and count.isdigit() and int(count) >= 1 and period.strip().lower() in _RATE_PERIODS):
        raise ImproperlyConfigured(f"{name} must be a rate such as 30/min (count/s, min, hour or day), not {raw!r}")
    return f"{int(count)}/{_RATE_PERIODS[period.strip().lower()]}"


_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


def env_url(name: str, default: str | None = None) -> str:
    """An absolute http(s) URL. Plain http only to a provider on this host: anything that crosses
    a network carries codes and tokens, so it must be https."""
    raw = env_str(name, default).strip()
    parts = urlsplit(raw)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ImproperlyConfigured(f"{name} must be an absolute https:// URL, not {raw!r}")
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK_HOSTS:
        raise ImproperlyConfigured(f"{name} must use https:// (plain http only to 127.0.0.1 or localhost)")
    return raw


def env_pairs(name: str) -> list[tuple[str, str]]:
    """``left=right`` pairs separated by commas, such as ``idp-legal=legal-l1,idp-ops=datacenter-admins``.

    A pair may repeat its left side (one name leading to several) or its right side (several to
    one); an exact repeat, an empty side or a missing ``=`` stops start-up.
    """
    pairs: list[tuple[str, str]] = []
    for item in env_list(name, []):
        left, sep, right = (part.strip() for part in item.partition("="))
        if not sep or not left or not right or "=" in right:
            raise ImproperlyConfigured(f"{name} must be name=name pairs separated by commas, not {item!r}")
        if (left, right) in pairs:
            raise ImproperlyConfigured(f"{name} names {left}={right} twice")
        pairs.append((left, right))
    return pairs
