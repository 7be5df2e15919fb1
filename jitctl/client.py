"""The HTTP side of jitctl: JSON over urllib, the API's error shape turned into ApiError."""

from __future__ import annotations

import ipaddress
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

from jitctl import __version__

API_PREFIX = "/api/v1/"
TIMEOUT_SECONDS = 30


class ApiError(Exception):
    """The server refused: its status, its ``detail`` and the field ``errors`` it named."""

    def __init__(self, status: int, detail: str, errors: dict[str, Any] | None = None, retry_after: str = "") -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors or {}
        self.retry_after = retry_after


class Unreachable(Exception):
    """No answer from the server (connection refused, DNS, TLS, timeout)."""


class UnsafeUrl(ValueError):
    """A base URL jitctl will not send credentials to."""


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # urllib would repeat the Authorization header to wherever a redirect points, even another
    # host; the API never redirects, so a redirect is refused instead of followed.
    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> None:
        raise ApiError(code, f"The server answered with a redirect to {newurl}; check --url.")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def base_url_check(url: str, *, allow_http: bool) -> str:
    """The base URL, normalised (no trailing slash); plain HTTP only to this machine unless allowed,
    since tokens, credentials and revealed values travel in it."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeUrl(f"--url must be an http:// or https:// address, not {url!r}.")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise UnsafeUrl("--url must not carry a query, a fragment or user:password@.")
    if parts.scheme == "http" and not _is_loopback(parts.hostname) and not allow_http:
        raise UnsafeUrl(
            f"Refusing plain http:// to {parts.hostname}: tokens and secrets would cross the network "
            "unencrypted. Use https://, or pass --insecure-http on a network you trust."
        )
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


class ApiClient:
    def __init__(self, base_url: str, token: str | None = None) -> None:
        self.base_url = base_url
        self.token = token
        self._opener = urllib.request.build_opener(_NoRedirects)

    def url(self, path: str, query: dict[str, Any] | None = None) -> str:
        address = self.base_url + API_PREFIX + path.lstrip("/")
        wanted = {name: value for name, value in (query or {}).items() if value not in (None, "")}
        return address + ("?" + urllib.parse.urlencode(wanted) if wanted else "")

    def call(
        self, method: str, path: str, body: dict[str, Any] | None = None, query: dict[str, Any] | None = None
    ) -> Any:
        return self._send(method, self.url(path, query), body)

    def get(self, path: str, **query: Any) -> Any:
        return self.call("GET", path, query=query)

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self.call("POST", path, body=body or {})

    def delete(self, path: str) -> Any:
        return self.call("DELETE", path)

    def get_all(self, path: str, **query: Any) -> list[Any]:
        """Every item of a list endpoint, following its ``next`` links (plain lists pass through)."""
        page = self.get(path, **query)
        if isinstance(page, list):
            return page
        items = list(page.get("results", []))
        seen: set[str] = set()
        while page.get("next") and page["next"] not in seen:
            seen.add(page["next"])
            page = self._send("GET", self._same_server(page["next"]), None)
            items.extend(page.get("results", []))
        return items

    def _same_server(self, link: str) -> str:
        # The server builds `next` from the Host it saw, which behind a proxy may differ from ours;
        # its path and query are re-based on --url so the token only ever goes where it was meant.
        parts = urllib.parse.urlsplit(link)
        base_path = urllib.parse.urlsplit(self.base_url).path
        if not parts.path.startswith(base_path + API_PREFIX):
            raise ApiError(0, f"The server sent a next-page link outside the API: {link}")
        return self.base_url + parts.path[len(base_path) :] + ("?" + parts.query if parts.query else "")

    def _send(self, method: str, url: str, body: dict[str, Any] | None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - scheme checked
        request.add_header("Accept", "application/json")
        request.add_header("User-Agent", f"jitctl/{__version__}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with self._opener.open(request, timeout=TIMEOUT_SECONDS) as response:
                raw = response.read()
        except urllib.error.HTTPError as refused:
            raise _api_error(refused) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as problem:
            reason = getattr(problem, "reason", problem)
            raise Unreachable(f"Cannot reach {self.base_url}: {reason}") from None
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise ApiError(0, f"The server at {self.base_url} did not answer with JSON; check --url.") from None


def _api_error(refused: urllib.error.HTTPError) -> ApiError:
    raw = refused.read()
    retry_after = refused.headers.get("Retry-After", "") if refused.headers else ""
    try:
        payload = json.loads(raw)
    except ValueError:
        payload = None
    if isinstance(payload, dict) and "detail" in payload:
        errors = payload.get("errors") if isinstance(payload.get("errors"), dict) else {}
        return ApiError(refused.code, str(payload["detail"]), errors, retry_after)
    return ApiError(refused.code, f"HTTP {refused.code} {refused.reason}", {}, retry_after)


def iter_field_errors(errors: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(field, message) pairs of a validation error, nested fields named with dots."""
    for field, messages in errors.items():
        if isinstance(messages, dict):
            for inner, message in iter_field_errors(messages):
                yield f"{field}.{inner}", message
        elif isinstance(messages, list):
            for message in messages:
                if isinstance(message, dict):
                    for inner, text in iter_field_errors(message):
                        yield f"{field}.{inner}", text
                else:
                    yield field, str(message)
        else:
            yield field, str(messages)
