"""Admin: job and upload lists open, the job page links to its Celery task results, and the
cancel action goes through the service."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from tasks_app import services
from tasks_app.models import Job, JobState

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("memory_layer", "broker")]


@pytest.fixture
def admin_client_logged_in(db) -> Client:
    admin = get_user_model().objects.create_superuser("root", password="root-password-1")
    client = Client()
    client.force_login(admin)
    return client


def test_lists_and_job_page_open(admin_client_logged_in, user):
    job = services.job_start(owner=user, kind="simulated", params={})
    for url in ("/admin/tasks_app/job/", "/admin/tasks_app/upload/", "/admin/django_celery_results/taskresult/"):
        assert admin_client_logged_in.get(url).status_code == 200, url
    page = admin_client_logged_in.get(f"/admin/tasks_app/job/{job.id}/change/")
    assert page.status_code == 200
    assert f"?q={job.id}".encode() in page.content  # link to the job's task results
    assert admin_client_logged_in.get("/admin/tasks_app/job/?state__exact=pending&kind=simulated").status_code == 200


def test_cancel_action_cancels_through_the_service(admin_client_logged_in, user):
    pending = services.job_start(owner=user, kind="simulated", params={})
    finished = services.job_start(owner=user, kind="simulated", params={})
    services.job_cancel(owner=user, job_id=finished.id)
    response = admin_client_logged_in.post(
        "/admin/tasks_app/job/",
        {"action": "cancel_selected", "_selected_action": [str(pending.id), str(finished.id)]},
        follow=True,
    )
    assert response.status_code == 200
    assert b"Cancellation asked for 1 job(s)." in response.content
    pending.refresh_from_db()
    assert pending.state == JobState.CANCELLED
    assert Job.objects.filter(state=JobState.CANCELLED).count() == 2
