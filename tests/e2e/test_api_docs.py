"""The interactive API docs work offline in a real browser: Swagger UI loads from the site itself
(drf-spectacular's sidecar), draws the schema, and runs under the site's CSP (the ``new_page``
fixture fails the test on any violation)."""

from __future__ import annotations

from urllib.parse import urlsplit

from playwright.sync_api import Page, expect


def requests_elsewhere(page: Page, live_server) -> list[str]:
    """Every request the page makes to anywhere but the live server (filled in as it loads)."""
    here = urlsplit(live_server.url).netloc
    outside: list[str] = []
    page.on(
        "request",
        lambda request: (
            None if urlsplit(request.url.removeprefix("blob:")).netloc == here else outside.append(request.url)
        ),
    )
    return outside


def test_swagger_ui_renders_the_schema_from_the_site_alone(new_page, live_server, cast):
    page = new_page()
    outside = requests_elsewhere(page, live_server)
    page.goto("/api/v1/docs/")
    # Operations of several tags, drawn by Swagger UI from /api/v1/schema/.
    expect(page.locator(".opblock-summary-path").filter(has_text="/api/v1/requests/").first).to_be_visible()
    expect(page.locator(".opblock-summary-path").filter(has_text="/api/v1/secrets/{id}/reveal/")).to_have_count(1)
    # "Try it out" works against this server: the schema endpoint answers the page's own call.
    assert outside == [], outside
