"""End-to-end tests: a real Chromium drives the live server, on PostgreSQL and Redis, with a real
Celery worker on the same test database.

- ``page`` is a fresh browser context (its own cookies) at laptop size; ``new_page()`` opens
  another one, so several people can be signed in at once (an admin and two approvers).
- ``sign_in(page, username, password)`` goes through /login/ like a person does.
- ``screenshot(page, name)`` saves full-page PNGs at laptop and phone widths into
  ``JIT_SCREENSHOT_DIR`` (default var/screenshots/).
- ``celery_worker`` is one worker per test module, its broker queue purged before each test.

Chromium is Debian's (/usr/bin/chromium, installed by .ci/run); a missing browser fails the tests,
it never skips them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright
from playwright.sync_api import Error as PlaywrightError

from jitaccess.celery import app
from tests.worker import ROOT, celery_processes

CHROMIUM = Path("/usr/bin/chromium")
LAPTOP = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}
WIDTHS = {"laptop": LAPTOP, "phone": PHONE}
# Tight: every page here answers in well under a second; a slow CI box still fits.
TIMEOUT_MS = 5_000
expect.set_options(timeout=TIMEOUT_MS)


def screenshot_dir() -> Path:
    return Path(os.environ.get("JIT_SCREENSHOT_DIR") or ROOT / "var" / "screenshots")


# --- the browser --------------------------------------------------------------------------------


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """One Chromium for the whole e2e run, closed when the last e2e test is done.

    Playwright's sync API keeps an asyncio loop running in this thread while the browser is
    open, and Django then refuses ORM calls here as "from an async context". The tests' ORM calls
    are plain synchronous ones, so the guard is lifted for exactly as long as the browser runs.
    """
    if not CHROMIUM.exists():
        pytest.fail(
            f"The end-to-end tests need Chromium at {CHROMIUM}: install it with "
            "`apt-get install chromium` (.ci/run does this).",
            pytrace=False,
        )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=str(CHROMIUM))
            yield chromium
            chromium.close()


_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Iterator[None]:
    # Kept so that the page fixtures know, at teardown, whether the test failed.
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


@pytest.fixture
def new_page(browser: Browser, live_server: Any, request: pytest.FixtureRequest) -> Iterator[Callable[[], Page]]:
    """Opens pages, each in a context of its own: one per person signed in during the test.

    Relative URLs (``page.goto("/audit/")``) go to the live server. When the test fails, every
    page it opened is saved under ``failures/`` in the screenshot folder. Any Content-Security-Policy
    violation on any of its pages fails the test: the pages must work under the site's CSP.
    """
    contexts: list[BrowserContext] = []
    violations: list[str] = []

    def open_page() -> Page:
        context = browser.new_context(base_url=live_server.url, viewport=LAPTOP)
        context.set_default_timeout(TIMEOUT_MS)
        context.add_init_script(_REPORT_CSP_VIOLATIONS)
        context.on("console", lambda message: _keep_csp_violation(message.text, violations))
        contexts.append(context)
        return context.new_page()

    yield open_page
    reports = request.node.stash.get(_REPORTS, {})
    if any(report.failed for report in reports.values()):
        folder = screenshot_dir() / "failures"
        folder.mkdir(parents=True, exist_ok=True)
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name)
        shown = [opened for context in contexts for opened in context.pages]
        for number, opened in enumerate(shown, start=1):
            # A page the failure already closed or crashed has nothing to show.
            with suppress(PlaywrightError):
                opened.screenshot(path=folder / f"{stem}-{number}.png", full_page=True)
    for context in contexts:
        context.close()
    if violations:
        pytest.fail("Content-Security-Policy violations:\n" + "\n".join(violations), pytrace=False)


# Chromium logs a blocked load to the console itself; the event also catches what it only reports.
_REPORT_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  console.error(`CSP violation: ${event.violatedDirective} blocked ${event.blockedURI || "inline"}`
    + ` at ${event.sourceFile || document.location.href}:${event.lineNumber}`);
});
"""


def _keep_csp_violation(text: str, violations: list[str]) -> None:
    if text.startswith("CSP violation:") or "Content Security Policy" in text:
        violations.append(text)


@pytest.fixture
def page(new_page: Callable[[], Page]) -> Page:
    return new_page()


# --- signing in -----------------------------------------------------------------------------------


def submit_sign_in(page: Page, username: str, password: str, *, next_path: str | None = None) -> None:
    """Fill in and send the sign-in form, finding its fields by their labels."""
    page.goto("/login/" if next_path is None else "/login/?" + urlencode({"next": next_path}))
    page.get_by_label("Username", exact=True).fill(username)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()


def sign_in(page: Page, username: str, password: str, *, next_path: str | None = None) -> None:
    """Sign in through /login/ and wait for the page it leads to (``next_path``, else home)."""
    submit_sign_in(page, username, password, next_path=next_path)
    expect(page, f"signing in as {username} was refused").not_to_have_url(re.compile(r"/login/(\?.*)?$"))
    assert session_cookie(page) is not None


def session_cookie(page: Page) -> str | None:
    found = [cookie["value"] for cookie in page.context.cookies() if cookie["name"] == "sessionid"]
    return found[0] if found else None


def csrf_headers(page: Page) -> dict[str, str]:
    """What a script on the page sends with a POST: the CSRF cookie's token as a header."""
    token = next(cookie["value"] for cookie in page.context.cookies() if cookie["name"] == "csrftoken")
    return {"X-CSRFToken": token}


# --- screenshots --------------------------------------------------------------------------------


def screenshot(page: Page, name: str) -> list[Path]:
    """Full-page PNGs of the page as it is, at laptop and phone widths: ``<name>-laptop.png`` and
    ``<name>-phone.png``; each width is also checked not to scroll sideways. The page keeps its
    viewport afterwards."""
    assert re.fullmatch(r"[a-z0-9][a-z0-9-]*", name), f"screenshot names are lower-case words and dashes: {name}"
    folder = screenshot_dir()
    folder.mkdir(parents=True, exist_ok=True)
    before = page.viewport_size
    saved = []
    for width, size in WIDTHS.items():
        page.set_viewport_size(size)
        path = folder / f"{name}-{width}.png"
        # Wide content (tables) scrolls inside its own region; the page itself never sideways.
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{name} scrolls sideways by {overflow}px at {width} width ({size['width']}px)"
        page.screenshot(path=path, full_page=True, animations="disabled")
        saved.append(path)
    if before is not None:
        page.set_viewport_size(before)
    return saved


# --- the worker ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def _module_worker(tmp_path_factory: pytest.TempPathFactory, django_db_setup: None) -> Iterator[None]:
    # After django_db_setup, so the worker is pointed at the test database, not the configured one.
    with celery_processes(tmp_path_factory.mktemp("worker")):
        yield


@pytest.fixture
def celery_worker(_module_worker: None) -> None:
    """A real worker, shared by the tests of a module. Tasks take ids, ids are not reused after the
    database is emptied between tests, and a task for a row that is gone does nothing; still, the
    queue is purged so that no test's tasks run during the next one."""
    app.control.purge()
