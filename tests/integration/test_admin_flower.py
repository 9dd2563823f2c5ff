"""The admin and Flower as operators use them, against the real stack (every Procfile process).

Jobs are started over the real WebSocket (``wsclient.JobsClient``), then looked at in the Django
admin (job list, Celery task results, the cancel action) in Chromium, and in Flower over its
REST API and in its UI. The screenshots in ``docs/img/`` (kept in git, shown in the README) are
taken here.

(Over ~350 lines: the admin and Flower share one real stack and its helpers, and each case walks
one operator's page.)
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import urllib.parse
import urllib.request
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest

from tests.integration.stack import ROOT, HttpSession, Stack
from tests.integration.wsclient import FINAL, JobsClient
from tests.processes import http_status
from tests.realdata import AIRPORTS
from tests.waiting import wait_for

T = TypeVar("T")

SCREENSHOTS = ROOT / "docs" / "img"
RUN_JOB = "tasks_app.run_job"
POLL_TICK = "tasks_app.poll_tick"
#: Upper bound of every wait for something the stack does on its own (never asserted on).
WAIT_S = 60.0
#: The window the admin's lists must fit (issue 10 point 10), with Django's navigation sidebar
#: open (its default); the screenshots are taken in it too.
ADMIN_VIEWPORT = {"width": 1400, "height": 900}
#: Django admin's rendering of an empty value.
EMPTY = "-"


def in_thread(make: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
    """Run a WebSocket coroutine to the end in a thread of its own.

    Playwright's sync API keeps an event loop set in the test's thread, so ``asyncio.run``
    cannot run there.
    """
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(make(*args))).result()


async def run_to_the_end(session: HttpSession, starts: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Start each ``(kind, params)`` on one socket; return each job's final object, in order."""
    client = await JobsClient.open(session)
    ids = []
    for kind, params in starts:
        accepted = await client.answer({"type": "job.start", "kind": kind, "params": params})
        assert accepted["type"] == "job.accepted", accepted
        ids.append(accepted["job"]["id"])
    finals: dict[str, dict[str, Any]] = {}

    def all_final(frame: dict[str, Any]) -> bool:
        job = frame.get("job") or {}
        if job.get("id") in ids and job["state"] in FINAL:
            finals[job["id"]] = job
        return len(finals) == len(ids)

    for frame in client.received:  # those that came with the answers, then the next ones
        all_final(frame)
    if len(finals) < len(ids):
        await client.recv_until(all_final, WAIT_S)
    await client.close()
    return [finals[job_id] for job_id in ids]


async def start_until_running(session: HttpSession, params: dict[str, Any]) -> str:
    """Start a simulated job and return its id once a frame says it is running."""
    client = await JobsClient.open(session)
    accepted = await client.answer({"type": "job.start", "kind": "simulated", "params": params})
    job_id = str(accepted["job"]["id"])
    state = accepted["job"]["state"]
    while state != "running":
        frame = await client.recv(WAIT_S)
        if frame.get("job", {}).get("id") == job_id:
            state = frame["job"]["state"]
    await client.close()
    return job_id


async def final_of(session: HttpSession, job_id: str) -> dict[str, Any]:
    """Subscribe to a job and return its object once it is final."""
    client = await JobsClient.open(session)
    snapshot = await client.answer({"type": "job.subscribe", "job_id": job_id})
    assert snapshot["type"] == "job.snapshot", snapshot
    job: dict[str, Any] = snapshot["job"]
    if job["state"] not in FINAL:
        job = (await client.until_final(job_id, timeout=WAIT_S))[-1]["job"]
    await client.close()
    return job


def cell(row: Any, field: str) -> str:
    """Text of a changelist cell (``td`` or, for the link column, ``th``)."""
    return str(row.locator(f".field-{field}").inner_text()).strip()


def readonly(page: Any, field: str) -> str:
    """Text of a read-only field on an admin change or view page."""
    return str(page.locator(f".field-{field} .readonly").inner_text()).strip()


def result_rows_until_done(page: Any, url: str, count: int) -> Any:
    """Open a task-result list until it has ``count`` rows, all ``SUCCESS`` (results of tasks that
    end after the job's final frame, like a kind's work task, are written a moment later)."""

    def done() -> Any:
        page.goto(url)
        rows = page.locator("#result_list tbody tr")
        statuses = [s.strip() for s in rows.locator(".field-status").all_inner_texts()]
        return rows if len(statuses) == count and set(statuses) == {"SUCCESS"} else None

    return wait_for(done, WAIT_S, interval=0.5, desc=f"{count} task results, all SUCCESS, at {url}")


@pytest.mark.browser
def test_admin_lists_the_jobs_just_run_and_their_task_results(page: Any, stack: Stack, demo: HttpSession) -> None:
    status, upload = demo.upload(AIRPORTS.name, AIRPORTS.read_bytes())
    assert status == 201, upload
    simulated, profiled = in_thread(
        run_to_the_end,
        demo,
        [("simulated", {"step": 25, "interval_ms": 100}), ("csv_profile", {"upload_id": upload["upload_id"]})],
    )
    assert (simulated["state"], profiled["state"]) == ("succeeded", "succeeded")

    page.set_viewport_size(ADMIN_VIEWPORT)
    page.goto(f"{stack.http_url}/admin/tasks_app/job/")
    rows = {}
    for job in (simulated, profiled):
        row = page.locator("#result_list tbody tr").filter(has=page.get_by_role("link", name=job["id"][:8], exact=True))
        assert row.count() == 1, job["id"]
        assert cell(row, "kind") == job["kind"]
        assert cell(row, "state") == "succeeded"
        assert cell(row, "owner") == "demo"
        assert cell(row, "percent") == "100.0%"
        assert cell(row, "created") != EMPTY
        rows[job["id"]] = row
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "admin-jobs.png"))

    # The csv_profile job's link: its run task and its work task, nothing else.
    link = rows[profiled["id"]].locator(".field-task_results_link a")
    results_url = f"{stack.http_url}{link.get_attribute('href')}"
    results = result_rows_until_done(page, results_url, 2)
    names = sorted(s.strip() for s in results.locator(".field-task_name").all_inner_texts())
    assert names[1] == RUN_JOB
    assert names[0].startswith("tasks_app.kind.csv_profile"), names
    for i in range(2):
        result = results.nth(i)
        assert cell(result, "status") == "SUCCESS"
        assert profiled["id"] in cell(result, "arguments")
        # run_job runs on the progress queue; the kind's work task on its own queue, jobs.
        worker = "progress@" if cell(result, "task_name") == RUN_JOB else "jobs@"
        assert cell(result, "worker_name").startswith(worker)
        assert cell(result, "done") != EMPTY
        assert cell(result, "runtime").endswith(" s")

    # Every task result: run_job of both jobs, with arguments and worker.
    all_results = f"{stack.http_url}/admin/django_celery_results/taskresult/"
    page.goto(all_results)
    for job in (simulated, profiled):
        row = page.locator("#result_list tbody tr").filter(has_text=job["id"]).filter(has_text=RUN_JOB)
        assert row.count() == 1, job["id"]
        assert cell(row, "arguments") == f"['{job['id']}']"
        assert cell(row, "worker_name").startswith("progress@")
    page.screenshot(path=str(SCREENSHOTS / "admin-task-results.png"))

    # One result's page: every field django-celery-results fills with result_extended and
    # task_track_started.
    row = page.locator("#result_list tbody tr").filter(has_text=simulated["id"]).filter(has_text=RUN_JOB)
    row.locator(".field-task_id a").click()
    page.wait_for_selector(".field-date_started")
    seen = {
        field: readonly(page, field)
        for field in ("task_name", "task_args", "task_kwargs", "status", "worker", "date_started", "date_done")
    }
    print(f"\nTaskResult of {RUN_JOB} for job {simulated['id']}: {seen}")
    assert seen["task_name"] == RUN_JOB
    assert seen["task_args"] == f"\"['{simulated['id']}']\""
    assert seen["status"] == "SUCCESS"
    assert seen["worker"].startswith("progress@")
    assert seen["date_started"] not in {"", EMPTY}
    assert seen["date_done"] not in {"", EMPTY}


@pytest.mark.browser
def test_admin_cancel_action_cancels_a_running_job(page: Any, stack: Stack, demo: HttpSession) -> None:
    job_id = in_thread(start_until_running, demo, {"step": 1, "interval_ms": 1000})
    jobs = f"{stack.http_url}/admin/tasks_app/job/?q={job_id}"
    page.goto(jobs)
    page.check(f"input[name=_selected_action][value='{job_id}']")
    page.select_option("select[name=action]", "cancel_selected")
    page.click("button[name=index]")
    message = page.locator("ul.messagelist li.success")
    message.wait_for()
    assert message.inner_text().startswith(f"Job {job_id[:8]} (simulated) is cancelling")

    final = in_thread(final_of, demo, job_id)
    assert final["state"] == "cancelled"
    assert final["progress"]["current"] < 100
    page.goto(jobs)
    row = page.locator("#result_list tbody tr").filter(has=page.get_by_role("link", name=job_id[:8], exact=True))
    assert cell(row, "state") == "cancelled"


#: Per list: how far the page and the table scroll sideways, each column's width, and how many
#: cells wrap their text onto more than one line.
FIT_JS = """
() => {
  const results = document.querySelector('#changelist-form .results');
  const table = document.querySelector('#result_list');
  const columns = {};
  for (const th of table.querySelectorAll('thead th')) {
    columns[th.className.split(' ').find(c => c.startsWith('column-')) || '?'] = Math.round(th.offsetWidth);
  }
  const lines = (cell) => {
    const bottoms = new Set();
    const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    while (walker.nextNode()) {
      if (!walker.currentNode.textContent.trim()) continue;
      const range = document.createRange();
      range.selectNodeContents(walker.currentNode);
      for (const rect of range.getClientRects()) bottoms.add(Math.round(rect.bottom));
    }
    return bottoms.size;
  };
  const wrapped = [...table.querySelectorAll('tbody td, tbody th')]
    .filter(cell => cell.textContent.trim() && lines(cell) > 1)
    .map(cell => cell.className + ': ' + cell.textContent.trim().slice(0, 40));
  return {
    page: document.documentElement.scrollWidth - innerWidth,
    table: results.scrollWidth - results.clientWidth,
    columns,
    wrapped,
  };
}
"""


@pytest.mark.browser
def test_admin_lists_fit_a_1400_px_window(page: Any, stack: Stack, demo: HttpSession) -> None:
    # Failed jobs: their errors are the list's longest messages.
    status, upload = demo.upload("a-binary-file-with-a-rather-long-name.csv", b"\x89PNG\r\n\x1a\n\x00" * 64)
    assert status == 201, upload
    starts = [
        ("simulated", {"step": 10, "interval_ms": 50, "fail_at": 20}),
        ("remote", {"service": "demo", "payload": {"duration_s": 1, "fail": True}}),
        ("csv_profile", {"upload_id": upload["upload_id"]}),
    ]
    jobs = in_thread(run_to_the_end, demo, starts)
    assert [job["state"] for job in jobs] == ["failed", "failed", "failed"]
    page.set_viewport_size(ADMIN_VIEWPORT)
    page.goto(f"{stack.http_url}/admin/tasks_app/job/")
    if page.locator("#nav-sidebar").is_hidden():
        page.click("#toggle-nav-sidebar")  # Django remembers the sidebar's state: open it
    for url in ("/admin/tasks_app/job/", "/admin/django_celery_results/taskresult/"):
        page.goto(f"{stack.http_url}{url}")
        assert page.locator("#nav-sidebar").is_visible()
        fit = page.evaluate(FIT_JS)
        print(f"\n{url} at {ADMIN_VIEWPORT['width']} px: {fit}")
        assert fit["page"] <= 0, f"{url}: the page scrolls sideways by {fit['page']} px: {fit}"
        assert fit["table"] <= 0, f"{url}: {fit['table']} px of the list are cut off: {fit}"
        assert fit["wrapped"] == [], f"{url}: cells wrap: {fit}"


def flower_get(stack: Stack, path: str) -> Any:
    """GET Flower's ``path`` with the Procfile's basic-auth credentials; the decoded JSON."""
    token = base64.b64encode(f"{stack.env['DEMO_USERNAME']}:{stack.env['DEMO_PASSWORD']}".encode()).decode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{stack.flower_port}{path}", headers={"Authorization": f"Basic {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.loads(resp.read())


def flower_tasks_of(stack: Stack, job_id: str) -> dict[str, dict[str, Any]]:
    """Flower's tasks whose arguments or result hold ``job_id`` (its ``run_job``, and the
    ``poll_tick``s that polled it: they return the ids they polled), once both ended and two
    reads half a second apart agree (the events of the job's last ticks may still be on
    their way to Flower when its final frame arrived)."""
    query = urllib.parse.urlencode({"search": job_id, "limit": 1000})
    previous: list[set[str]] = [set()]

    def settled() -> dict[str, dict[str, Any]] | None:
        tasks: dict[str, dict[str, Any]] = flower_get(stack, f"/api/tasks?{query}")
        ended = {t["name"] for t in tasks.values() if t["state"] == "SUCCESS"}
        agree, previous[0] = set(tasks) == previous[0], set(tasks)
        return tasks if {RUN_JOB, POLL_TICK} <= ended and agree else None

    return wait_for(settled, WAIT_S, interval=0.5, desc=f"Flower's tasks of job {job_id} to end and settle")


@pytest.mark.integration
def test_flower_api_lists_every_task_with_name_and_args_and_needs_credentials(stack: Stack, demo: HttpSession) -> None:
    (job,) = in_thread(run_to_the_end, demo, [("simulated", {"step": 34, "interval_ms": 100})])
    assert job["state"] == "succeeded"
    tasks = flower_tasks_of(stack, job["id"])
    by_name: dict[str, list[dict[str, Any]]] = {}
    for task in tasks.values():
        by_name.setdefault(task["name"], []).append(task)
    assert set(by_name) == {RUN_JOB, POLL_TICK}
    (run,) = by_name[RUN_JOB]
    assert run["args"] == f"['{job['id']}']"
    assert (run["state"], run["routing_key"]) == ("SUCCESS", "progress")
    assert run["worker"].startswith("progress@")
    for tick in by_name[POLL_TICK]:
        assert re.fullmatch(r"\[\d+\]", tick["args"]), tick  # the tick's time, ms since the epoch
        assert tick["routing_key"] == "progress"
    polled = [t for t in by_name[POLL_TICK] if t["state"] == "SUCCESS" and job["id"] in (t["result"] or "")]
    assert polled, "Flower shows the ids a tick polled as its result"
    assert all(t["worker"].startswith("progress@") for t in polled)
    # task_send_sent_event: Flower knew each task from the moment it was sent, before a
    # worker received it.
    for task in tasks.values():
        assert task["sent"] is not None, task
        if task["received"] is not None:
            assert task["sent"] <= task["received"] + 1.0, task  # clocks of two processes
    assert {RUN_JOB, POLL_TICK} <= set(flower_get(stack, "/api/task/types")["task-types"])

    flower = f"http://127.0.0.1:{stack.flower_port}"
    for path in ("/api/tasks", "/api/workers", "/tasks", "/"):
        assert http_status(f"{flower}{path}") == 401, path
    wrong = base64.b64encode(f"{stack.env['DEMO_USERNAME']}:not-the-password".encode()).decode()
    assert http_status(f"{flower}/api/tasks", {"Authorization": f"Basic {wrong}"}) == 401
    assert f"Visit me at http://127.0.0.1:{stack.flower_port}" in stack.log_tail("flower", lines=500)


@pytest.mark.browser
def test_flower_task_list_in_the_browser_shows_the_tasks(browser: Any, stack: Stack, demo: HttpSession) -> None:
    (job,) = in_thread(run_to_the_end, demo, [("simulated", {"step": 20, "interval_ms": 100})])
    tasks = flower_tasks_of(stack, job["id"])  # Flower has seen the chain end
    flower = f"http://127.0.0.1:{stack.flower_port}"

    anonymous = browser.new_context()
    try:
        assert anonymous.request.get(f"{flower}/tasks").status == 401
    finally:
        anonymous.close()

    context = browser.new_context(
        viewport={"width": 1400, "height": 900},
        http_credentials={"username": stack.env["DEMO_USERNAME"], "password": stack.env["DEMO_PASSWORD"]},
    )
    try:
        page = context.new_page()
        page.set_default_timeout(30_000)
        assert page.goto(f"{flower}/tasks").status == 200
        page.fill("#tasks-table_filter input", job["id"])  # Flower searches names and arguments
        page.wait_for_function(
            """ids => {
                const rows = [...document.querySelectorAll('#tasks-table tbody tr[id]')];
                return rows.length > 1 && rows.every(row => ids.includes(row.id));
            }""",
            arg=list(tasks),
        )
        rows = page.locator("#tasks-table tbody tr")
        shown = {str(row.get_attribute("id")): cell_text(row, 0) for row in rows.all()}
        assert set(shown) <= set(tasks), shown  # only this job's tasks, by their ids
        assert set(shown.values()) == {RUN_JOB, POLL_TICK}
        page.screenshot(path=str(SCREENSHOTS / "flower-tasks.png"))

        run_id = next(task_id for task_id, name in shown.items() if name == RUN_JOB)
        page.click(f"#tasks-table a[href$='/task/{run_id}']")
        page.wait_for_url(f"{flower}/task/{run_id}")
        page.get_by_text(f"['{job['id']}']", exact=True).wait_for()  # its arguments
        page.screenshot(path=str(SCREENSHOTS / "flower-task.png"))
    finally:
        context.close()


def cell_text(row: Any, column: int) -> str:
    return str(row.locator("td").nth(column).inner_text()).strip()
