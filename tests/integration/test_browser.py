"""The pages in a real browser: Playwright driving Debian's Chromium against the real stack.

Every test watches the page the way a person would (bars, states, the connection
indicator) and records what changed with a MutationObserver, so "never backwards" and
"nothing after the final state" are checked on every update, not on a sample.

(Over ~350 lines: one real browser session per case of the page (start, progress, reconnect,
errors, accessibility), sharing one stack and its recorder.)
"""

from __future__ import annotations

import json
import os
import re
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from tests import processes
from tests.integration.browser import ARTIFACTS
from tests.integration.stack import DEMO_PASSWORD, READY_TIMEOUT_S, ROOT, Stack
from tests.realdata import AIRPORTS

pytestmark = pytest.mark.browser

AXE_JS = ROOT / "tests" / "integration" / "node_modules" / "axe-core" / "axe.min.js"
DOCS_IMG = ROOT / "docs" / "img"
SCREENS_USER = ("screens", "integration-screens-password")
FINAL_STATES = ("succeeded", "failed", "cancelled")
PHONE = {"width": 390, "height": 844}

#: Records every change of the connection indicator and of each job card's bar and state.
RECORDER_JS = """
() => {
  const rec = { conn: [], jobs: {} };
  window.__rec = rec;
  const conn = document.getElementById("conn-status");
  rec.conn.push(conn.dataset.state);
  new MutationObserver(() => rec.conn.push(conn.dataset.state))
    .observe(conn, { attributes: true, attributeFilter: ["data-state"] });
  const jobOf = (id) => (rec.jobs[id] = rec.jobs[id] || { values: [], states: [] });
  for (const card of document.querySelectorAll("#jobs article.job")) {
    const r = jobOf(card.dataset.jobId);
    r.states.push(card.dataset.state);
    const bar = card.querySelector("progress");
    if (bar && bar.hasAttribute("value")) r.values.push(Number(bar.getAttribute("value")));
  }
  new MutationObserver((mutations) => {
    for (const m of mutations) {
      const card = m.target.closest && m.target.closest("article.job");
      if (!card) continue;
      const r = jobOf(card.dataset.jobId);
      if (m.attributeName === "value" && m.target.hasAttribute("value")) {
        r.values.push(Number(m.target.getAttribute("value")));
      } else if (m.attributeName === "data-state" && m.target === card) {
        r.states.push(card.dataset.state);
      }
    }
  }).observe(document.getElementById("jobs"),
    { attributes: true, subtree: true, attributeFilter: ["value", "data-state"] });
}
"""


# ------------------------------------------------------------------ helpers


class Spec(NamedTuple):
    """A simulated job to start, and the state it must end in."""

    step: int
    interval_ms: int
    fail_at: int | None
    final: str


def record(page: Any) -> None:
    page.evaluate(RECORDER_JS)


def recorded(page: Any) -> dict[str, Any]:
    return page.evaluate("window.__rec")


def card(page: Any, job_id: str) -> Any:
    return page.locator(f"article.job[data-job-id='{job_id}']")


def bar_value(page: Any, job_id: str) -> float:
    return float(card(page, job_id).locator("progress.job-progress").get_attribute("value") or 0)


def job_ids(page: Any) -> list[str]:
    return page.eval_on_selector_all("#jobs article.job", "cards => cards.map(c => c.dataset.jobId)")


def start_simulated(page: Any, step: int, interval_ms: int, fail_at: int | None = None) -> str:
    """Start a simulated job from the form; returns its id once its card is on the page."""
    before = set(job_ids(page))
    page.fill("#sim-step", str(step))
    page.fill("#sim-interval", str(interval_ms))
    page.fill("#sim-fail-at", "" if fail_at is None else str(fail_at))
    page.click("#sim-start")
    page.wait_for_function(
        "n => document.querySelectorAll('#jobs article.job').length > n", arg=len(before), timeout=30_000
    )
    (new,) = set(job_ids(page)) - before
    return new


def upload_csv(page: Any, files: Any) -> str:
    """Upload a file with the CSV form; returns the id of its csv_profile job once its card is shown."""
    before = set(job_ids(page))
    page.set_input_files("#csv-file", files)
    page.click("#csv-start")
    page.wait_for_function(
        "n => document.querySelectorAll('#jobs article.job').length > n", arg=len(before), timeout=30_000
    )
    (new,) = set(job_ids(page)) - before
    assert card(page, new).get_attribute("data-kind") == "csv_profile"
    return new


def wait_state(page: Any, job_id: str, *states: str, timeout: float = 60_000) -> str:
    selector = ", ".join(f"article.job[data-job-id='{job_id}'][data-state={s}]" for s in states)
    page.wait_for_selector(selector, timeout=timeout)
    return str(card(page, job_id).get_attribute("data-state"))


def wait_value_at_least(page: Any, job_id: str, value: float) -> None:
    page.wait_for_function(
        "([id, v]) => { const p = document.querySelector(`article.job[data-job-id='${id}'] progress`);"
        " return p && Number(p.getAttribute('value')) >= v; }",
        arg=[job_id, value],
        timeout=60_000,
    )


def assert_never_backwards(history: dict[str, Any], job_id: str) -> list[float]:
    values = history["jobs"][job_id]["values"]
    assert values == sorted(values), f"bar of {job_id} went backwards: {values}"
    return values


#: What each new card showed when it was first put on the page (before any later frame).
FIRST_RENDER_JS = """
() => {
  window.__firstCounts = {};
  new MutationObserver((mutations) => {
    for (const m of mutations) {
      for (const node of m.addedNodes) {
        if (node.matches && node.matches("article.job") && !(node.dataset.jobId in window.__firstCounts)) {
          const counts = node.querySelector(".job-counts");
          window.__firstCounts[node.dataset.jobId] = { text: counts.textContent, title: counts.title };
        }
      }
    }
  }).observe(document.getElementById("jobs"), { childList: true });
}
"""
#: A number of the page: digits grouped by thousands ("336,776"), as the server writes them.
GROUPED = r"\d{1,3}(?:,\d{3})*"


def looks_final(page: Any, job_id: str) -> None:
    """A final card: a still bar (a value, no animation), no "total unknown", no "working…"."""
    the_card = card(page, job_id)
    bar = the_card.locator("progress.job-progress")
    assert bar.get_attribute("value") is not None
    assert bar.evaluate("b => !b.matches(':indeterminate') && getComputedStyle(b).animationName === 'none'")
    figures = the_card.locator(".job-figures").inner_text()
    assert "total unknown" not in figures
    assert "working" not in figures


def api_start(page: Any, stack: Stack, kind: str, params: dict[str, Any]) -> str:
    """Start a job with the HTTP API in the page's session (as a script would); returns its id."""
    csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    answer = page.request.post(
        f"{stack.http_url}/api/jobs/", data={"kind": kind, "params": params}, headers={"X-CSRFToken": csrf}
    )
    assert answer.status == 201, answer.text()
    return str(answer.json()["id"])


def log_in(browser: Any, stack: Stack, username: str, password: str, **context_args: Any) -> Any:
    context = browser.new_context(**({"viewport": {"width": 1200, "height": 900}} | context_args))
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(f"{stack.http_url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{stack.http_url}/")
    page.wait_for_selector("#conn-status[data-state=connected]")
    return page


def stop_web(stack: Stack) -> None:
    processes.stop(stack.processes["web"], timeout_s=20)


def start_web(stack: Stack) -> None:
    """Start the Procfile's web process again, as the stack first did; wait until it answers."""
    stack.launch("web", log_name="web-restarted")
    processes.wait_ready(
        {"web": processes.answers_http(f"{stack.http_url}/accounts/login/")},
        [stack.processes["web"]],
        READY_TIMEOUT_S,
        interval=0.2,
    )


def axe_script() -> Path:
    """axe-core from tests/integration/node_modules (``npm ci --prefix tests/integration``)."""
    if not AXE_JS.exists():
        message = (
            f"axe-core is not installed ({AXE_JS} is missing): run `npm ci --prefix tests/integration` "
            "(tests/integration/package-lock.json pins it)"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return AXE_JS


def assert_accessible(page: Any, what: str) -> None:
    """axe-core's rules on the page as it is now: no serious or critical violation."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(axe_script()))
    results = page.evaluate("async () => await axe.run(document, { resultTypes: ['violations'] })")
    assert results["testEngine"]["version"], "axe did not run"
    serious = [v for v in results["violations"] if v["impact"] in ("serious", "critical")]
    report = [
        {"id": v["id"], "impact": v["impact"], "help": v["help"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in serious
    ]
    assert not serious, f"axe found serious accessibility violations on {what}:\n{json.dumps(report, indent=2)}"


def png_bytes(size: int = 4096) -> bytes:
    """A real PNG image (random pixels): binary, with NUL bytes in its header."""
    width = 32
    height = max(1, size // (width * 3))
    rows = b"".join(b"\x00" + os.urandom(width * 3) for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


@pytest.fixture
def restore_web(stack: Stack) -> Iterator[None]:
    """Whatever happens in the test, the web process runs again afterwards."""
    yield
    if stack.processes["web"].poll() is not None:
        start_web(stack)


# -------------------------------------------------------------------- tests


def test_simulated_job_bar_reaches_100_and_succeeded(page: Any) -> None:
    job_id = start_simulated(page, step=10, interval_ms=200)
    assert wait_state(page, job_id, *FINAL_STATES) == "succeeded"
    the_card = card(page, job_id)
    assert the_card.get_attribute("data-kind") == "simulated"
    assert the_card.locator("progress.job-progress").get_attribute("value") == "100"
    assert the_card.locator(".job-percent").inner_text().strip() == "100%"
    assert the_card.locator(".job-state").inner_text().strip() == "succeeded"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-simulated.png"), full_page=True)


def test_three_jobs_at_once_each_bar_follows_its_own_job(page: Any) -> None:
    record(page)
    specs = {
        "a": Spec(step=5, interval_ms=250, fail_at=None, final="succeeded"),
        "b": Spec(step=10, interval_ms=400, fail_at=None, final="succeeded"),
        "c": Spec(step=4, interval_ms=250, fail_at=48, final="failed"),
    }
    ids = {name: start_simulated(page, s.step, s.interval_ms, s.fail_at) for name, s in specs.items()}
    assert len(set(ids.values())) == 3
    for name, spec in specs.items():
        assert wait_state(page, ids[name], *FINAL_STATES) == spec.final, name
    history = recorded(page)
    for name, spec in specs.items():
        values = assert_never_backwards(history, ids[name])
        between = sorted({v for v in values if 0 < v < 100})
        assert len(between) >= 2, f"job {name}: the bar did not advance step by step: {values}"
        # Each bar moves by its own job's step: the bars do not mirror one another.
        assert all(v % spec.step == 0 for v in between), f"job {name} (step {spec.step}): {values}"
        assert history["jobs"][ids[name]]["states"][-1] == spec.final
    assert bar_value(page, ids["a"]) == 100
    assert bar_value(page, ids["b"]) == 100
    failed = card(page, ids["c"])
    assert bar_value(page, ids["c"]) == 48
    assert failed.locator(".job-percent").inner_text().strip() == "48%"
    assert "simulated failure at 48%" in failed.locator(".job-error").inner_text()


def test_csv_upload_shows_the_profile_table(page: Any) -> None:
    page.evaluate(FIRST_RENDER_JS)
    job_id = upload_csv(page, str(AIRPORTS))
    # The upload's size is the total from the first frame (job.accepted), before any poll.
    first = page.evaluate("id => window.__firstCounts[id]", job_id)
    assert first == {"text": "0 bytes of 210 KB", "title": "0 of 210,365 bytes"}, first
    assert card(page, job_id).locator(".job-params").inner_text().strip() == "· airports.csv, 210 KB"
    assert wait_state(page, job_id, *FINAL_STATES) == "succeeded"
    profile = card(page, job_id).locator("details.profile")
    assert profile.evaluate("d => d.open")  # a wide screen shows it at once
    assert profile.locator("summary").inner_text() == "Profile: 7 columns, 3,376 rows"
    table = profile.locator("table.profile-table")
    names = table.locator("tbody tr td:first-child").all_inner_texts()
    assert [n.strip() for n in names] == ["iata", "name", "city", "state", "country", "latitude", "longitude"]
    caption = table.locator("caption").inner_text()
    assert "3,376 rows" in caption
    assert "210 KB (210,365 bytes)" in caption
    counts = [int(n.replace(",", "")) for n in table.locator("td[data-label=Non-null]").all_inner_texts()]
    assert max(counts) == 3376
    assert "3,376" in table.locator("td[data-label=Non-null]").all_inner_texts()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-csv.png"), full_page=True)


def test_binary_upload_shows_a_readable_error(page: Any) -> None:
    job_id = upload_csv(page, [{"name": "photo.png", "mimeType": "image/png", "buffer": png_bytes()}])
    assert wait_state(page, job_id, *FINAL_STATES) == "failed"
    failed = card(page, job_id)
    assert failed.locator(".job-title").inner_text() == f"CSV profile · {job_id[:8]}"
    assert re.fullmatch(r"· photo\.png, \d\.\d KB", failed.locator(".job-params").inner_text().strip())
    looks_final(page, job_id)
    assert failed.locator(".job-message").inner_text() == ""  # not the stale "started": the error says it
    assert re.fullmatch(r"0 bytes of \d\.\d KB", failed.locator(".job-counts").inner_text())
    error = failed.locator(".job-error").inner_text()
    assert "photo.png is not a CSV file we can read" in error
    assert "binary content" in error
    assert failed.locator("table.profile-table").count() == 0
    assert page.locator("#csv-error").inner_text().strip() == ""


def test_reload_mid_job_resumes_from_the_current_state(page: Any) -> None:
    job_id = start_simulated(page, step=5, interval_ms=300)
    wait_value_at_least(page, job_id, 25)
    page.reload()
    page.wait_for_selector("#conn-status[data-state=connected]")
    same = page.locator(f"article.job[data-job-id='{job_id}']")
    same.wait_for()
    assert float(same.locator("progress").get_attribute("value") or 0) >= 25  # never back to 0
    page.wait_for_selector(f"article.job[data-job-id='{job_id}'][data-state=succeeded]")
    assert same.locator(".job-percent").inner_text().strip() == "100%"


def test_job_page_is_live_after_reload_and_after_a_dropped_socket(page: Any, stack: Stack) -> None:
    job_id = start_simulated(page, step=4, interval_ms=400)
    card(page, job_id).locator(".job-title a").click()
    page.wait_for_url(f"{stack.http_url}/jobs/{job_id}/")
    assert job_ids(page) == [job_id]
    assert page.locator("h1").inner_text().startswith("Simulated job · " + job_id[:8])
    page.wait_for_selector("#conn-status[data-state=connected]")
    wait_value_at_least(page, job_id, 24)

    page.reload(wait_until="domcontentloaded")
    assert bar_value(page, job_id) >= 24  # the server renders the current state: never back to 0
    page.wait_for_selector("#conn-status[data-state=connected]")
    record(page)
    assert bar_value(page, job_id) >= 24

    page.evaluate("window.jobsApp.dropSocket()")
    page.wait_for_function("() => window.__rec.conn.includes('reconnecting')")
    page.wait_for_selector("#conn-status[data-state=connected]")
    assert wait_state(page, job_id, *FINAL_STATES) == "succeeded"
    history = recorded(page)
    assert "reconnecting" in history["conn"], history["conn"]
    assert history["conn"][-1] == "connected"
    values = assert_never_backwards(history, job_id)
    assert values[0] >= 24
    assert values[-1] == 100
    assert card(page, job_id).locator(".job-percent").inner_text().strip() == "100%"
    assert card(page, job_id).locator(".job-elapsed").inner_text().strip() != ""


def test_server_restart_shows_reconnecting_then_bars_catch_up(page: Any, stack: Stack, restore_web: None) -> None:
    record(page)
    slow = start_simulated(page, step=2, interval_ms=300)
    quick = start_simulated(page, step=5, interval_ms=300)
    for job_id in (slow, quick):
        wait_value_at_least(page, job_id, 10)

    stop_web(stack)  # a real drop: the server goes away; the workers keep the jobs running
    page.wait_for_selector("#conn-status[data-state=reconnecting]")
    # At least one reconnect attempt fails while the server is down (backoff, then retry).
    page.wait_for_function("() => /attempt [2-9]/.test(document.getElementById('conn-status').textContent)")
    values_while_down = {job_id: bar_value(page, job_id) for job_id in (slow, quick)}
    start_web(stack)

    page.wait_for_selector("#conn-status[data-state=connected]", timeout=60_000)
    for job_id in (slow, quick):
        assert wait_state(page, job_id, *FINAL_STATES) == "succeeded"
    history = recorded(page)
    conn = history["conn"]
    assert "reconnecting" in conn, conn
    assert conn.index("reconnecting") < len(conn) - 1 - conn[::-1].index("connected"), conn
    for job_id in (slow, quick):
        values = assert_never_backwards(history, job_id)
        assert values[-1] == 100
        assert values_while_down[job_id] in values


def test_offline_then_online_reconnects_and_catches_up(page: Any) -> None:
    done = start_simulated(page, step=50, interval_ms=50)
    assert wait_state(page, done, *FINAL_STATES) == "succeeded"
    record(page)
    job_id = start_simulated(page, step=3, interval_ms=250)
    wait_value_at_least(page, job_id, 9)
    page.context.set_offline(True)
    page.wait_for_selector("#conn-status[data-state=offline]")
    frozen = bar_value(page, job_id)
    # While the page is disconnected, a card of a job that is not final says it may be stale;
    # a final card cannot be (a final state never changes).
    stale = card(page, job_id).locator(".job-stale")
    assert stale.is_visible()
    assert "may be out of date" in stale.inner_text()
    assert card(page, job_id).get_attribute("data-stale") == "true"
    assert card(page, done).get_attribute("data-stale") is None
    assert card(page, done).locator(".job-stale").is_hidden()
    page.context.set_offline(False)
    page.wait_for_selector("#conn-status[data-state=connected]")
    page.wait_for_selector(f"article.job[data-job-id='{job_id}']:not([data-stale])")  # its snapshot is back
    assert stale.is_hidden()
    assert wait_state(page, job_id, *FINAL_STATES) == "succeeded"
    history = recorded(page)
    assert "offline" in history["conn"], history["conn"]
    assert "reconnecting" in history["conn"], history["conn"]
    values = assert_never_backwards(history, job_id)
    assert frozen in values
    assert values[-1] == 100


def test_cancel_asks_first_and_the_cancelled_state_is_final(page: Any) -> None:
    job_id = start_simulated(page, step=1, interval_ms=300)
    wait_value_at_least(page, job_id, 3)
    the_card = card(page, job_id)
    button = the_card.locator("button.job-cancel")
    dialog = page.locator("dialog#cancel-dialog")

    button.click()
    assert dialog.evaluate("d => d.open && d.matches(':modal')")
    assert page.get_by_role("dialog", name=f"Cancel Simulated job · {job_id[:8]}?").is_visible()
    page.keyboard.press("Escape")  # changed my mind: nothing is sent
    assert not dialog.evaluate("d => d.open")
    assert button.evaluate("b => document.activeElement === b")  # focus comes back to the button
    assert the_card.get_attribute("data-state") == "running"

    button.press("Enter")
    page.get_by_role("button", name="Cancel job").click()
    assert wait_state(page, job_id, *FINAL_STATES) == "cancelled"
    value = bar_value(page, job_id)
    assert 3 <= value < 100
    assert the_card.locator("button.job-cancel").count() == 0
    record(page)
    page.wait_for_timeout(2_000)  # ten poll intervals: any late frame would show up here
    history = recorded(page)["jobs"][job_id]
    assert history == {"values": [value], "states": ["cancelled"]}, history
    page.reload()
    assert card(page, job_id).get_attribute("data-state") == "cancelled"
    assert bar_value(page, job_id) == value


def test_remote_job_shows_the_retry_notice_then_succeeds(page: Any) -> None:
    before = set(job_ids(page))
    page.fill("#remote-duration", "3")
    page.fill("#remote-unavailable", "1")
    page.click("#remote-start")
    page.wait_for_function(
        "n => document.querySelectorAll('#jobs article.job').length > n", arg=len(before), timeout=30_000
    )
    (job_id,) = set(job_ids(page)) - before
    assert card(page, job_id).get_attribute("data-kind") == "remote"
    notice = card(page, job_id).locator(".job-retry")
    notice.wait_for(state="visible", timeout=30_000)
    assert "HTTP 503: temporarily unavailable — retry 2 of 5" in notice.inner_text()
    # The retry is said once: in the notice (with its countdown), not in the message too.
    assert card(page, job_id).locator(".job-message").inner_text() == ""
    assert card(page, job_id).locator(".job-params").inner_text().strip() == "· on demo, 3 s, unavailable for 1 s"
    assert wait_state(page, job_id, "succeeded", "failed") == "succeeded"
    assert notice.is_hidden()
    assert card(page, job_id).locator(".job-percent").inner_text().strip() == "100%"


def test_a_remote_job_cancelled_before_any_progress_looks_final(page: Any) -> None:
    page.fill("#remote-duration", "5")
    page.fill("#remote-unavailable", "60")
    before = set(job_ids(page))
    page.click("#remote-start")
    page.wait_for_function(
        "n => document.querySelectorAll('#jobs article.job').length > n", arg=len(before), timeout=30_000
    )
    (job_id,) = set(job_ids(page)) - before
    card(page, job_id).locator(".job-retry").wait_for(state="visible")
    the_card = card(page, job_id)
    assert the_card.locator("progress.job-progress").evaluate("b => b.matches(':indeterminate')")  # still working
    assert "total unknown" in the_card.locator(".job-counts").inner_text()
    the_card.locator("button.job-cancel").click()
    page.get_by_role("button", name="Cancel job").click()
    assert wait_state(page, job_id, *FINAL_STATES) == "cancelled"
    looks_final(page, job_id)
    assert the_card.locator(".job-retry").is_hidden()
    assert the_card.locator(".job-counts").inner_text() == ""  # nothing was done, and that is all there is


def test_a_custom_kind_has_a_title_a_summary_and_numbers_with_separators(page: Any, stack: Stack) -> None:
    job_id = api_start(page, stack, "primes", {"limit": 3_000_000})
    page.reload()  # the dashboard renders every job of the user, this one too
    page.wait_for_selector("#conn-status[data-state=connected]")
    the_card = card(page, job_id)
    assert the_card.locator(".job-title").inner_text() == f"Count primes · {job_id[:8]}"
    assert the_card.locator(".job-params").inner_text().strip() == "· below 3,000,000"
    page.wait_for_function(
        "id => /[0-9],[0-9]{3} units\\/s$/.test(document.querySelector(`article.job[data-job-id='${id}'] .job-rate`)"
        ".textContent)",
        arg=job_id,
    )
    assert re.fullmatch(rf"{GROUPED} units/s", the_card.locator(".job-rate").inner_text())
    assert re.fullmatch(rf"{GROUPED} / 3,000,000", the_card.locator(".job-counts").inner_text())
    assert re.fullmatch(rf"{GROUPED} primes below {GROUPED}", the_card.locator(".job-message").inner_text())
    the_card.locator("button.job-cancel").click()  # tidy up: no job of this test outlives it
    page.get_by_role("button", name="Cancel job").click()
    assert wait_state(page, job_id, *FINAL_STATES) == "cancelled"


def test_a_finished_profile_is_folded_on_a_phone(browser: Any, stack: Stack) -> None:
    phone = log_in(browser, stack, "demo", DEMO_PASSWORD, viewport=PHONE, is_mobile=True, has_touch=True)
    try:
        job_id = upload_csv(phone, str(AIRPORTS))
        assert wait_state(phone, job_id, *FINAL_STATES) == "succeeded"
        profile = card(phone, job_id).locator("details.profile")
        summary = profile.locator("summary")
        assert summary.inner_text() == "Profile: 7 columns, 3,376 rows"
        assert not profile.evaluate("d => d.open")
        table = profile.locator("table.profile-table")
        assert table.is_hidden()
        folded = card(phone, job_id).bounding_box()["height"]
        summary.tap()
        table.wait_for(state="visible")
        assert card(phone, job_id).bounding_box()["height"] > 4 * folded  # seven blocks, one per column
        assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    finally:
        phone.context.close()


def test_the_site_has_an_icon(page: Any, stack: Stack) -> None:
    icon = page.locator("link[rel=icon]").get_attribute("href")
    assert icon == "/static/jobs/favicon.svg"
    for url in (f"{stack.http_url}{icon}", f"{stack.http_url}/favicon.ico"):  # the latter redirects
        answer = page.request.get(url)
        assert answer.status == 200, url
        assert answer.headers["content-type"].startswith("image/svg+xml"), url
        assert answer.body().startswith(b"<svg")


def test_dashboard_and_job_page_pass_axe(page: Any, stack: Stack) -> None:
    axe_script()
    profiled = upload_csv(page, str(AIRPORTS))
    failing = start_simulated(page, step=20, interval_ms=100, fail_at=40)
    running = start_simulated(page, step=1, interval_ms=300)
    assert wait_state(page, failing, *FINAL_STATES) == "failed"
    assert wait_state(page, profiled, *FINAL_STATES) == "succeeded"
    wait_value_at_least(page, running, 2)
    assert_accessible(page, "the dashboard")

    card(page, running).locator("button.job-cancel").click()
    assert_accessible(page, "the dashboard with the cancel dialog open")
    page.get_by_role("button", name="Keep running").click()

    page.goto(f"{stack.http_url}/jobs/{running}/")
    page.wait_for_selector("#conn-status[data-state=connected]")
    assert_accessible(page, "a running job's page")
    page.goto(f"{stack.http_url}/jobs/{failing}/")
    page.wait_for_selector("#conn-status[data-state=connected]")
    assert_accessible(page, "a failed job's page")
    page.goto(f"{stack.http_url}/jobs/{running}/")
    page.wait_for_selector("#conn-status[data-state=connected]")  # else the page says "Not connected"
    page.locator("button.job-cancel").click()
    page.get_by_role("button", name="Cancel job").click()
    wait_state(page, running, "cancelled")


def test_screenshots_for_the_docs(browser: Any, stack: Stack) -> None:
    """docs/img/: the dashboard with jobs in every state, a job page, the dashboard on a phone."""
    stack.manage("ensure_demo_user", extra_env={"DEMO_USERNAME": SCREENS_USER[0], "DEMO_PASSWORD": SCREENS_USER[1]})
    DOCS_IMG.mkdir(parents=True, exist_ok=True)
    page = log_in(browser, stack, *SCREENS_USER)
    try:
        profiled = upload_csv(page, str(AIRPORTS))
        assert wait_state(page, profiled, *FINAL_STATES) == "succeeded"
        done = start_simulated(page, step=25, interval_ms=100)
        failed = start_simulated(page, step=5, interval_ms=150, fail_at=35)
        cancelled = start_simulated(page, step=2, interval_ms=300)
        wait_state(page, done, "succeeded")
        wait_state(page, failed, "failed")
        wait_value_at_least(page, cancelled, 10)
        card(page, cancelled).locator("button.job-cancel").click()
        page.get_by_role("button", name="Cancel job").click()
        wait_state(page, cancelled, "cancelled")
        slow = start_simulated(page, step=1, interval_ms=400)
        steady = start_simulated(page, step=1, interval_ms=300)
        wait_value_at_least(page, steady, 30)
        page.reload()  # the server's order: active jobs first, then the history
        page.wait_for_selector("#conn-status[data-state=connected]")
        assert job_ids(page)[:2] == [steady, slow]
        page.screenshot(path=str(DOCS_IMG / "dashboard.png"), full_page=True)

        page.set_viewport_size({"width": 1000, "height": 560})  # full_page grows it to the content
        page.goto(f"{stack.http_url}/jobs/{steady}/")
        page.wait_for_selector("#conn-status[data-state=connected]")
        assert wait_state(page, steady, "running") == "running"
        page.screenshot(path=str(DOCS_IMG / "job-page.png"), full_page=True)
    finally:
        page.context.close()

    phone = log_in(browser, stack, *SCREENS_USER, viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
    try:
        assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]  # no sideways scrolling
        assert not card(phone, profiled).locator("details.profile").evaluate("d => d.open")  # folded on a phone
        # The history: a failed card, a succeeded one, and the folded profile.
        phone.evaluate(
            "id => window.scrollTo(0, document.querySelector(`article.job[data-job-id='${id}']`)"
            ".getBoundingClientRect().top + window.scrollY - 12)",
            failed,
        )
        phone.screenshot(path=str(DOCS_IMG / "dashboard-phone.png"))
        for job_id in (steady, slow):  # tidy up: no job of this test outlives it
            cancel = card(phone, job_id).locator("button.job-cancel")
            if cancel.count():
                cancel.tap()
                phone.get_by_role("button", name="Cancel job").tap()
            assert wait_state(phone, job_id, *FINAL_STATES) in ("cancelled", "succeeded")
    finally:
        phone.context.close()
    for name in ("dashboard.png", "job-page.png", "dashboard-phone.png"):
        assert (DOCS_IMG / name).stat().st_size > 10_000, name
