"""``csv_profile``: profile a CSV file the user uploaded, in a work task on queue ``jobs``.

Parameters: ``upload_id`` (required, one of the owner's uploads), ``delimiter`` (optional,
sniffed when absent) and ``encoding`` (optional, default ``utf-8``). The work task
(``tasks_app.profile_csv``) reads the file with ``tasks_app.csv_profiler`` and records
bytes read of the file's size through a ``ProgressRecorder``; polls relay that progress.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any

from celery import current_app

from tasks_app.kinds.base import JobKind, ParamReader, Reading
from tasks_app.models import Upload
from tasks_app.progress import read_recorded_progress, request_cancel

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from tasks_app.models import Job

DELIMITERS = (",", ";", "\t", "|")
ENCODINGS = ("utf-8", "latin-1", "cp1252")
TASK_PROFILE_CSV = "tasks_app.profile_csv"


class CsvProfileKind(JobKind):
    """Rows and per-column figures of an uploaded CSV file; progress in bytes read."""

    name = "csv_profile"
    work_task = TASK_PROFILE_CSV

    def validate(self, params: dict[str, Any], *, owner: User) -> dict[str, Any]:
        """``upload_id`` must name one of ``owner``'s uploads (else a field error)."""
        r = ParamReader(params, allowed={"upload_id", "delimiter", "encoding"})
        upload_id = r.string("upload_id", required=True, max_length=64)
        delimiter = r.string("delimiter", required=False, max_length=2, choices=DELIMITERS)
        encoding = r.string("encoding", required=False, max_length=16, choices=ENCODINGS)
        upload: Upload | None = None
        if upload_id is not None:
            try:
                upload = Upload.objects.get(id=uuid.UUID(upload_id), owner=owner)
            except (ValueError, Upload.DoesNotExist):
                r.add_error("upload_id", "no upload with this id; upload the file first")
        r.raise_if_invalid()
        assert upload is not None
        cleaned: dict[str, Any] = {"upload_id": str(upload.id), "name": upload.name}
        if delimiter is not None:
            cleaned["delimiter"] = delimiter
        if encoding is not None:
            cleaned["encoding"] = encoding
        return cleaned

    def read(self, job: Job, now: dt.datetime) -> Reading:
        """The progress the work task recorded last (outcomes arrive through services)."""
        return Reading(progress=read_recorded_progress(job.id))

    def cancel(self, job: Job) -> None:
        """Flag the recorder (cooperative stop) and revoke the work task if still queued."""
        request_cancel(job.id)
        if job.work_task_id:
            current_app.control.revoke(job.work_task_id)


KIND = CsvProfileKind()
