"""Absolute links to the approval pages, for messages read outside the browser (email).

The host comes from ``JIT_PUBLIC_URL``, never from an incoming request, so a forged Host header
cannot plant its own address in a message.
"""

from __future__ import annotations

from django.conf import settings
from django.urls import reverse


def absolute(path: str) -> str:
    return settings.JIT_PUBLIC_URL.rstrip("/") + path


def request_url(pk: int) -> str:
    return absolute(reverse("approvals:request-detail", args=[pk]))


def inbox_url() -> str:
    return absolute(reverse("approvals:inbox"))


def grant_url(pk: int) -> str:
    return absolute(reverse("approvals:grant-detail", args=[pk]))
