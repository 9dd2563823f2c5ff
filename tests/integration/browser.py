"""Browser fixtures shared by the browser tests: Playwright driving Debian's Chromium.

``browser`` (one Chromium per module), ``page`` (a logged-in page of the demo user on the
real stack, at ``/``) and ``ARTIFACTS`` (where tests put screenshots for failures).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.stack import DEMO_PASSWORD, ROOT, Stack

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = ROOT / "test-artifacts"


def chromium_path() -> str:
    """Debian's Chromium (``CHROMIUM_PATH`` overrides); missing → fail under CI, else skip."""
    path = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        message = f"Chromium not found at {path}: install it with `apt-get install chromium` or set CHROMIUM_PATH"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any, stack: Stack) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(f"{stack.http_url}/")
    page.fill("#id_username", "demo")
    page.fill("#id_password", DEMO_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{stack.http_url}/")
    page.wait_for_selector("#conn-status[data-state=connected]")
    yield page
    context.close()
