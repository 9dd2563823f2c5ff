"""The page in a real browser: Playwright driving Debian's Chromium against the real stack."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.stack import DEMO_PASSWORD, ROOT, Stack
from tests.realdata import AIRPORTS

pytestmark = pytest.mark.browser

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


def test_simulated_job_bar_reaches_100_and_succeeded(page: Any) -> None:
    page.fill("#sim-step", "10")
    page.fill("#sim-interval", "200")
    page.click("#sim-start")
    card = page.locator("article.job[data-kind=simulated]").first
    card.wait_for()
    page.wait_for_selector("article.job[data-kind=simulated][data-state=succeeded]")
    assert card.locator("progress.job-progress").get_attribute("value") == "100"
    assert card.locator(".job-percent").inner_text().strip() == "100%"
    assert card.locator(".job-state").inner_text().strip() == "succeeded"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-simulated.png"), full_page=True)


def test_csv_upload_shows_the_profile_table(page: Any) -> None:
    page.set_input_files("#csv-file", str(AIRPORTS))
    page.click("#csv-start")
    page.wait_for_selector("article.job[data-kind=csv_profile][data-state=succeeded]")
    card = page.locator("article.job[data-kind=csv_profile][data-state=succeeded]").first
    table = card.locator("table.profile-table")
    names = table.locator("tbody tr td:first-child").all_inner_texts()
    assert [n.strip() for n in names] == ["iata", "name", "city", "state", "country", "latitude", "longitude"]
    assert "3,376" in table.locator("caption").inner_text() or "3376" in table.locator("caption").inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-csv.png"), full_page=True)


def test_reload_mid_job_resumes_from_the_current_state(page: Any) -> None:
    page.fill("#sim-step", "5")
    page.fill("#sim-interval", "300")
    page.click("#sim-start")
    page.wait_for_selector("article.job[data-kind=simulated][data-state=running]")
    card = page.locator("article.job[data-kind=simulated]").first
    job_id = card.get_attribute("data-job-id")
    page.wait_for_function(
        "id => Number(document.querySelector(`article.job[data-job-id='${id}'] progress`).value) >= 25", arg=job_id
    )
    page.reload()
    page.wait_for_selector("#conn-status[data-state=connected]")
    same = page.locator(f"article.job[data-job-id='{job_id}']")
    same.wait_for()
    assert float(same.locator("progress").get_attribute("value") or 0) >= 25  # never back to 0
    page.wait_for_selector(f"article.job[data-job-id='{job_id}'][data-state=succeeded]")
    assert same.locator(".job-percent").inner_text().strip() == "100%"
