"""One HTTP POST to a receiver: short timeouts, no redirects, only a short excerpt of the answer kept."""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

EXCERPT_CHARS = 200


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A redirect could send the signed event somewhere the security admins never chose.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirects)


@dataclass(frozen=True)
class Answer:
    status: int | None  # None: no HTTP answer at all (refused, timed out, TLS failure)
    error: str  # empty on a 2xx

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def _excerpt(raw: bytes) -> str:
    text = raw[: EXCERPT_CHARS * 4].decode("utf-8", "replace")
    return " ".join(text.split())[:EXCERPT_CHARS]


def post(url: str, body: bytes, headers: dict[str, str], *, timeout: float) -> Answer:
    if not url.lower().startswith(("https://", "http://")):
        return Answer(None, "Not an http(s) URL.")  # checked when saved too; never file: or ftp:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 — http(s) only
    try:
        with _opener.open(request, timeout=timeout) as response:
            response.read(EXCERPT_CHARS)  # drained a little, never stored
            return Answer(response.status, "")
    except urllib.error.HTTPError as exc:
        with exc:
            excerpt = _excerpt(exc.read(EXCERPT_CHARS * 4))
        return Answer(exc.code, f"HTTP {exc.code}: {excerpt}" if excerpt else f"HTTP {exc.code}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return Answer(None, f"{type(exc).__name__}: {reason}"[:EXCERPT_CHARS])
