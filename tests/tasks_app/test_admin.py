"""Admin: lists, filters and search open; job pages are view-only and link to their Celery task
results; the cancel action goes through the service and reports each job; API tokens cannot be
added or have their key edited; task results list name, args, worker and times."""

from __future__ import annotations

import html
import re
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone
from django_celery_results.models import TaskResult

from tasks_app import services, tokens
from tasks_app.admin import LIST_MESSAGE_CHARS, JobAdmin, decoded_args, duration_text, task_results_url
from tasks_app.models import Job, JobState
from tests.factories import make_superuser, make_user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("memory_layer", "broker")]

JOBS = "/admin/tasks_app/job/"
TASK_RESULTS = "/admin/django_celery_results/taskresult/"
TOKENS = "/admin/tasks_app/apitoken/"


@pytest.fixture
def root(db: None) -> Any:
    return make_superuser("root")


@pytest.fixture
def admin_client(root: Any) -> Client:
    client = Client()
    client.force_login(root)
    return client


def text_of(response: Any) -> str:
    assert response.status_code == 200, response.status_code
    return str(response.content.decode())


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_every_list_opens(admin_client: Client, user: Any) -> None:
    services.job_start(owner=user, kind="simulated", params={})
    for url in (JOBS, "/admin/tasks_app/upload/", TOKENS, TASK_RESULTS):
        assert admin_client.get(url).status_code == 200, url


def test_job_list_shows_id_kind_state_owner_percent_message_and_task_link(admin_client: Client, user: Any) -> None:
    job = services.job_start(owner=user, kind="simulated", params={"step": 10})
    Job.objects.filter(pk=job.pk).update(progress_current=42, progress_total=100, progress_message="step 4 of 10")
    page = text_of(admin_client.get(JOBS))
    for column in ("column-short_id", "column-kind", "column-state", "column-owner", "column-percent"):
        assert column in page, column
    for column in ("column-message", "column-created", "column-task_results_link"):
        assert column in page, column
    assert f">{str(job.id)[:8]}</a>" in page
    assert "42.0%" in page
    assert '<span class="clip" title="step 4 of 10">step 4 of 10</span>' in page
    assert "alice" in page
    assert f'href="{TASK_RESULTS}?task_id__in={job.celery_task_id}"' in page


def test_failed_job_lists_its_error_as_the_message(admin_client: Client, user: Any) -> None:
    job = services.job_start(owner=user, kind="simulated", params={})
    error = "the remote service said no: " + "a long story " * 10
    Job.objects.filter(pk=job.pk).update(state=JobState.FAILED, error=error)
    page = text_of(admin_client.get(JOBS))
    # Shortened in the list (admin.css clips it to its column too), whole in its title.
    shown = error[: LIST_MESSAGE_CHARS - 1] + "…"
    assert f'<span class="clip" title="{error}">{shown}</span>' in page


def test_filters_and_search_find_the_job(admin_client: Client, user: Any, other_user: Any) -> None:
    make_user("no-jobs")
    mine = services.job_start(owner=user, kind="simulated", params={})
    theirs = services.job_start(owner=other_user, kind="simulated", params={})
    services.job_cancel(owner=other_user, job_id=theirs.id)
    today = timezone.now()
    queries = {
        "state__exact=pending": (mine, theirs),
        "state__exact=cancelled": (theirs, mine),
        f"owner__id__exact={user.pk}": (mine, theirs),
        "kind=simulated&state__exact=pending": (mine, theirs),
        f"created_at__year={today.year}&created_at__month={today.month}&created_at__day={today.day}": (mine, None),
        f"q={mine.id}": (mine, theirs),
        f"q={str(mine.id)[:8]}": (mine, theirs),
        f"q={mine.celery_task_id}": (mine, theirs),
        "q=mallory": (theirs, mine),
    }
    assert "no-jobs" not in text_of(admin_client.get(JOBS))  # the owner filter lists owners only
    for query, (shown, hidden) in queries.items():
        response = admin_client.get(f"{JOBS}?{query}")
        page = text_of(response)
        assert "?e=1" not in response.request["QUERY_STRING"], query
        assert str(shown.id)[:8] in page, query
        if hidden is not None:
            assert str(hidden.id)[:8] not in page, query


def test_every_job_field_is_on_the_page_and_nothing_is_editable(admin_client: Client, user: Any) -> None:
    shown = {name for _, options in JobAdmin.fieldsets for name in options["fields"]}
    assert {f.name for f in Job._meta.concrete_fields} <= shown  # a new field is never hidden
    job = services.job_start(owner=user, kind="simulated", params={"step": 7})
    page = text_of(admin_client.get(f"{JOBS}{job.id}/change/"))
    assert not re.search(r'<(input|textarea|select)[^>]+name="(?!csrfmiddlewaretoken)', page)
    assert 'name="_save"' not in page
    assert '"step": 7' in html.unescape(page)
    assert f'href="{TASK_RESULTS}?task_id__in={job.celery_task_id}"' in page
    assert admin_client.post(f"{JOBS}{job.id}/change/", {"state": "succeeded"}).status_code == 403
    job.refresh_from_db()
    assert job.state == JobState.PENDING
    assert admin_client.get(f"{JOBS}add/").status_code == 403


def test_task_results_link_lists_exactly_the_jobs_tasks(admin_client: Client, user: Any) -> None:
    job = services.job_start(owner=user, kind="simulated", params={})
    job.work_task_id = str(uuid.uuid4())
    other = str(uuid.uuid4())
    started = timezone.now()
    for task_id, name in (
        (job.celery_task_id, "tasks_app.run_job"),
        (job.work_task_id, "tasks_app.kind.csv_profile"),
        (other, "tasks_app.run_job"),
    ):
        TaskResult.objects.create(
            task_id=task_id,
            task_name=name,
            task_args=f"\"['{job.id if task_id != other else uuid.uuid4()}']\"",
            status="SUCCESS",
            worker="jobs@example-host",
            date_started=started,
        )
    TaskResult.objects.filter(task_id=job.celery_task_id).update(date_done=started + timedelta(seconds=1.25))
    url = task_results_url(job)
    assert url == f"{TASK_RESULTS}?task_id__in={job.celery_task_id},{job.work_task_id}"
    response = admin_client.get(url)
    page = text_of(response)
    assert "?e=1" not in response.request["QUERY_STRING"]
    assert job.celery_task_id in page
    assert job.work_task_id in page
    assert other not in page
    columns = ("task_id", "task_name", "arguments", "worker_name", "done", "runtime")
    for column in (f"column-{name}" for name in columns):
        assert column in page, column
    assert "tasks_app.kind.csv_profile" in page
    assert "jobs@example-host" in page
    assert "1.250 s" in page  # runtime: date_done - date_started
    # The arguments as Celery wrote them, without django-celery-results' JSON quoting.
    assert f'<span class="clip" title="[&#x27;{job.id}&#x27;]">[&#x27;{job.id}&#x27;]</span>' in page
    assert "jobs/admin.css" in page  # the narrow columns


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0.25, "0.250 s"), (9.9994, "9.999 s"), (42.04, "42.0 s"), (185.4, "3 min 05 s"), (3725, "1 h 02 min")],
)
def test_duration_text(seconds: float, shown: str) -> None:
    assert duration_text(seconds) == shown


def test_task_results_are_read_only(admin_client: Client) -> None:
    result = TaskResult.objects.create(task_id=str(uuid.uuid4()), task_name="tasks_app.run_job", status="SUCCESS")
    assert admin_client.get(f"{TASK_RESULTS}add/").status_code == 403
    page = text_of(admin_client.get(f"{TASK_RESULTS}{result.pk}/change/"))
    assert 'name="_save"' not in page
    assert admin_client.post(f"{TASK_RESULTS}{result.pk}/change/", {"status": "FAILURE"}).status_code == 403
    result.refresh_from_db()
    assert result.status == "SUCCESS"


@pytest.mark.parametrize(
    ("stored", "shown"),
    [("\"['a1', 0]\"", "['a1', 0]"), ("['a1']", "['a1']"), ("", ""), (None, ""), ("[1, 2]", "[1, 2]")],
)
def test_decoded_args(stored: str | None, shown: str) -> None:
    assert decoded_args(stored) == shown


def test_job_without_task_ids_has_no_task_link(user: Any) -> None:
    job = Job(owner=user, kind="simulated")
    assert task_results_url(job) is None


def test_cancel_action_reports_each_job_and_goes_through_the_service(
    admin_client: Client, user: Any, other_user: Any
) -> None:
    pending = services.job_start(owner=user, kind="simulated", params={})
    running = services.job_start(owner=other_user, kind="simulated", params={"interval_ms": 1000})
    services.job_run(job_id=running.id)
    finished = services.job_start(owner=user, kind="simulated", params={})
    services.job_cancel(owner=user, job_id=finished.id)
    response = admin_client.post(
        JOBS,
        {"action": "cancel_selected", "_selected_action": [str(j.id) for j in (pending, running, finished)]},
        follow=True,
    )
    shown = messages_of(response)
    assert f"Job {str(pending.id)[:8]} (simulated) is cancelled." in shown
    assert any(m.startswith(f"Job {str(running.id)[:8]} (simulated) is cancelling") for m in shown), shown
    assert f"Job {str(finished.id)[:8]} (simulated) not cancelled: job {finished.id} already cancelled; " in (
        "".join(shown)
    )
    states = {j.pk: j.state for j in Job.objects.all()}
    assert states == {pending.pk: "cancelled", running.pk: "cancelling", finished.pk: "cancelled"}
    logged = LogEntry.objects.filter(action_flag=CHANGE).values_list("object_id", flat=True)
    assert set(logged) == {str(pending.id), str(running.id)}


def test_only_final_jobs_can_be_deleted(admin_client: Client, user: Any) -> None:
    active = services.job_start(owner=user, kind="simulated", params={})
    final = services.job_start(owner=user, kind="simulated", params={})
    services.job_cancel(owner=user, job_id=final.id)
    assert admin_client.get(f"{JOBS}{active.id}/delete/").status_code == 403
    both = {"action": "delete_selected", "_selected_action": [str(active.id), str(final.id)], "post": "yes"}
    admin_client.post(JOBS, both)
    assert Job.objects.count() == 2  # one active job in the selection refuses the whole delete
    admin_client.post(JOBS, {**both, "_selected_action": [str(final.id)]})
    assert list(Job.objects.values_list("pk", flat=True)) == [active.pk]


def test_cancel_action_needs_the_change_permission(user: Any) -> None:
    viewer = make_user("viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_job"))
    client = Client()
    client.force_login(viewer)
    job = services.job_start(owner=user, kind="simulated", params={})
    assert "cancel_selected" not in text_of(client.get(JOBS))
    client.post(JOBS, {"action": "cancel_selected", "_selected_action": [str(job.id)]})
    job.refresh_from_db()
    assert job.state == JobState.PENDING


def test_api_tokens_list_and_change_page_keep_the_key_read_only(admin_client: Client, user: Any) -> None:
    token, raw = tokens.api_token_create(user=user, name="nightly export")
    page = text_of(admin_client.get(TOKENS))
    assert f"{token.prefix}…" in page
    assert "nightly export" in page
    assert "alice" in page
    assert "manage.py api_token create" in page  # where tokens come from, since there is no add
    assert f"{TOKENS}add/" not in page
    assert admin_client.get(f"{TOKENS}add/").status_code == 403
    change = text_of(admin_client.get(f"{TOKENS}{token.pk}/change/"))
    assert token.key_hash not in change
    assert raw not in change
    assert 'name="name"' in change
    for field in ("prefix", "user", "key_hash", "created_at", "last_used_at"):
        assert f'name="{field}"' not in change, field
    before = (token.prefix, token.key_hash, token.user_id)
    admin_client.post(
        f"{TOKENS}{token.pk}/change/", {"name": "renamed", "prefix": "x", "key_hash": "0" * 64, "user": "999"}
    )
    token.refresh_from_db()
    assert token.name == "renamed"
    assert (token.prefix, token.key_hash, token.user_id) == before
