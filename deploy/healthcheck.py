"""The container's health check: GET /healthz from the local gunicorn; exit 0 when it answers 200.

Django answers 400 to a Host header outside DJANGO_ALLOWED_HOSTS, so the probe names an allowed host
rather than 127.0.0.1. It says it came over HTTPS (X-Forwarded-Proto), so that behind a TLS proxy an
HTTPS redirect does not answer in place of the app, and it never follows a redirect. Standard
library only: it runs without the app's settings or secrets.
"""

from __future__ import annotations

import http.client
import os
import sys

PORT = 8000


def probe_host(allowed_hosts: str | None) -> str:
    """A host name that the comma-separated DJANGO_ALLOWED_HOSTS accepts."""
    hosts = [host.strip() for host in (allowed_hosts or "").split(",") if host.strip()]
    # Unset, the settings' default list starts with localhost; "*" accepts anything.
    if not hosts or hosts[0] == "*":
        return "localhost"
    # ".example.com" accepts example.com itself.
    return hosts[0].lstrip(".")


def healthy(port: int = PORT, *, allowed_hosts: str | None = None, timeout: float = 4.0) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", "/healthz", headers={"Host": probe_host(allowed_hosts), "X-Forwarded-Proto": "https"})
        return connection.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


if __name__ == "__main__":
    sys.exit(0 if healthy(allowed_hosts=os.environ.get("DJANGO_ALLOWED_HOSTS")) else 1)
