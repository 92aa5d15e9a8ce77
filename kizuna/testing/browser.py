"""Playwright driving Debian's Chromium (/usr/bin/chromium) against pytest-django's live server.

`playwright install` cannot download browsers here, so the system Chromium is launched
through `executable_path`. Without it, every test that uses these fixtures is SKIPPED
and the run ends with a loud warning; `make test` installs it (apt-get install chromium).

Fixtures:
  browser            the session's Chromium (playwright.sync_api.Browser)
  page               a page in a fresh English (en-US) context; `page.goto(live_server.url + path)`
  new_page(locale)   a factory: a page in a fresh context asking for that locale ("ja-JP")
Every test using them is marked `browser` automatically (`pytest -m "not browser"` skips them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
MISSING_CHROMIUM = (
    f"BROWSER TESTS SKIPPED: {CHROMIUM} is missing. "
    "Install it with `apt-get install -y chromium fonts-noto-cjk` (make test does)."
)
BROWSER_FIXTURES = {"browser", "page", "new_page"}
_skipped_for_missing_chromium: list[str] = []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if BROWSER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.browser)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _skipped_for_missing_chromium:
        terminalreporter.write_sep("!", MISSING_CHROMIUM, red=True, bold=True)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        _skipped_for_missing_chromium.append("browser")
        pytest.skip(MISSING_CHROMIUM)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield chromium
        chromium.close()


@pytest.fixture
def new_page(browser: Browser) -> Iterator[Callable[..., Page]]:
    contexts: list[BrowserContext] = []

    def open_page(locale: str = "en-US") -> Page:
        context = browser.new_context(locale=locale)
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_page: Callable[..., Page]) -> Page:
    return new_page("en-US")
