"""Durations as people read them: "1 h 30 min", not 5400 seconds."""

from __future__ import annotations

from django import template

register = template.Library()

UNITS = (("d", 86400), ("h", 3600), ("min", 60), ("s", 1))


@register.filter
def duration(seconds: int | None) -> str:
    """The two largest non-zero units of ``seconds``; "0 s" for nothing."""
    if seconds is None:
        return "–"
    seconds = max(int(seconds), 0)
    parts = []
    for unit, size in UNITS:
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count} {unit}")
    return " ".join(parts[:2]) or "0 s"
