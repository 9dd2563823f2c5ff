"""``csv_profile``: profile a CSV file the user uploaded, written on the public kind API.

Parameters: ``upload_id`` (required, one of the owner's uploads), ``delimiter`` (optional,
sniffed when absent) and ``encoding`` (optional, default ``utf-8``). The work task
(``tasks_app.kind.csv_profile``, queue ``jobs``) reads the file with
``tasks_app.csv`` and records bytes read of the file's size through its
``ProgressRecorder``; polls relay that progress.

``csv_profile_parallel`` takes the same parameters and ``parts``: a split kind
(``split_job_kind``) whose items are record-aligned byte ranges of the file
(``tasks_app.csv.parts``), profiled in parallel by every ``worker-jobs`` process and merged
into exactly the figures ``csv_profile`` gives.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any, Final, Literal

from django.conf import settings
from pydantic import Field, ValidationInfo, field_validator, model_validator

from tasks_app.csv import (
    CsvPartsMismatchError,
    CsvPlan,
    NotCSVError,
    merge_csv_parts,
    plan_csv_parts,
    profile_csv,
    profile_csv_part,
)
from tasks_app.formatting import human_bytes
from tasks_app.kinds.base import StrictParams
from tasks_app.kinds.split_kind import split_job_kind
from tasks_app.kinds.task_kind import JobFailed, job_kind
from tasks_app.models import Upload
from tasks_app.progress import ProgressRecorder

logger = logging.getLogger(__name__)

DELIMITERS: Final = (",", ";", "\t", "|")
ENCODINGS: Final = ("utf-8", "latin-1", "cp1252")


class CsvProfileParams(StrictParams):
    """``upload_id`` must name one of the owner's uploads; ``name`` and ``size`` are set by
    the server to the upload's file name and size in bytes (whatever the client sent)."""

    upload_id: str = Field(
        max_length=64,
        description="Id answered by POST /uploads/ (one of your uploads).",
        json_schema_extra={"format": "uuid"},
    )
    delimiter: Literal[",", ";", "\t", "|"] | None = Field(None, description="Sniffed when absent.")
    encoding: Literal["utf-8", "latin-1", "cp1252"] | None = Field(None, description="Default utf-8.")
    name: str | None = Field(None, description="File name of the upload (set by the server).")
    size: int | None = Field(None, description="Size of the upload in bytes (set by the server).")

    @field_validator("upload_id")
    @classmethod
    def _owner_has_the_upload(cls, value: str, info: ValidationInfo) -> str:
        owner = (info.context or {}).get("owner")
        try:
            upload_id = uuid.UUID(value)
        except ValueError:
            raise ValueError("no upload with this id; upload the file first") from None
        if not Upload.objects.filter(id=upload_id, owner_id=getattr(owner, "pk", None)).exists():
            raise ValueError("no upload with this id; upload the file first")
        return str(upload_id)

    @model_validator(mode="after")
    def _name_and_size_of_the_upload(self) -> CsvProfileParams:
        self.name, self.size = Upload.objects.filter(id=self.upload_id).values_list("name", "size").first() or (
            None,
            None,
        )
        return self


def _summary(params: CsvProfileParams) -> str:
    """``"airports.csv, 210.4 KB"``: the file's name and size."""
    parts = [params.name or "upload"]
    if params.size is not None:
        parts.append(human_bytes(params.size))
    return ", ".join(parts)


def _total(params: CsvProfileParams) -> int | None:
    """Progress is bytes read of the file's size: known from the start."""
    return params.size


@job_kind("csv_profile", params=CsvProfileParams, queue="jobs", title="CSV profile", summary=_summary, total=_total)
def profile_uploaded_csv(params: CsvProfileParams, recorder: ProgressRecorder) -> dict[str, Any]:
    """Profile the job's uploaded CSV file, recording bytes read as progress.

    Returns the profile (``tasks_app.csv.profile_csv``) with ``file`` added; a file
    that is not CSV, or that cannot be read, fails the job with a readable error.
    """
    upload = Upload.objects.filter(pk=params.upload_id).first()
    if upload is None:
        raise JobFailed("the uploaded file no longer exists")

    def on_progress(done: int, size: int) -> None:
        recorder.set_progress(done, size, f"{done:,} of {size:,} bytes read")

    try:
        with upload.file.open("rb") as fileobj:
            result = profile_csv(
                fileobj,  # type: ignore[arg-type]  # Django's File proxies read() of a binary file
                size=upload.size,
                encoding=params.encoding or "utf-8",
                delimiter=params.delimiter,
                on_progress=on_progress,
            )
    except NotCSVError as exc:
        raise JobFailed(f"{upload.name} is not a CSV file we can read: {exc}") from None
    except OSError as exc:
        raise JobFailed(f"could not read {upload.name}: {exc.strerror or exc}") from None
    recorder.set_progress(upload.size, upload.size, "profiled")
    result["file"] = upload.name
    return result


#: A part is at least this many bytes: a small file gets fewer parts.
MIN_PART_BYTES: Final = 1_000_000
#: Most parts a job may ask for.
MAX_PARTS: Final = 64


class CsvProfileParallelParams(CsvProfileParams):
    """``csv_profile``'s parameters, and ``parts``: how many byte ranges to profile in parallel."""

    parts: int | None = Field(
        None, ge=1, le=MAX_PARTS, description="Byte ranges profiled in parallel (default CSV_PROFILE_PARTS)."
    )


def _open_upload(params: CsvProfileParams) -> Upload:
    upload = Upload.objects.filter(pk=params.upload_id).first()
    if upload is None:
        raise JobFailed("the uploaded file no longer exists")
    return upload


def _plan(params: CsvProfileParallelParams, upload: Upload) -> CsvPlan:
    """The file cut into record-aligned byte ranges (``tasks_app.csv.plan_csv_parts``): ``parts``
    (default ``CSV_PROFILE_PARTS``), fewer for a file under ``MIN_PART_BYTES`` a part."""
    wanted = params.parts or int(settings.CSV_PROFILE_PARTS)
    parts = max(1, min(wanted, upload.size // MIN_PART_BYTES))
    try:
        with upload.file.open("rb") as fileobj:
            return plan_csv_parts(
                fileobj,  # type: ignore[arg-type]  # Django's File proxies read() and seek()
                size=upload.size,
                parts=parts,
                encoding=params.encoding or "utf-8",
                delimiter=params.delimiter,
            )
    except NotCSVError as exc:
        raise JobFailed(f"{upload.name} is not a CSV file we can read: {exc}") from None
    except (OSError, ValueError) as exc:
        raise JobFailed(f"could not read {upload.name}: {getattr(exc, 'strerror', None) or exc}") from None


def byte_ranges(params: CsvProfileParallelParams) -> list[dict[str, Any]]:
    """The split: one item per byte range, ``{"plan": CsvPlan.to_dict(), "index": k}``."""
    plan = _plan(params, _open_upload(params))
    return [{"plan": plan.to_dict(), "index": index} for index in range(len(plan.ranges))]


def range_bytes(item: dict[str, Any]) -> int:
    """A range's share of the job's progress: its bytes."""
    start, end = item["plan"]["ranges"][item["index"]]
    return max(1, int(end) - int(start))


def merged_profile(params: CsvProfileParallelParams, partials: list[dict[str, Any]]) -> dict[str, Any]:
    """The merge: the parts' partial profiles merged into ``profile_csv``'s exact result
    (``tasks_app.csv.merge_csv_parts``), with ``file`` added. A file whose quoting breaks RFC 4180
    can put a cut inside a row; the parts then do not add up and the file is profiled again
    whole, in this task, so the figures stay exact."""
    upload = _open_upload(params)
    plan = _plan(params, upload)
    try:
        result = merge_csv_parts(plan, partials)
    except CsvPartsMismatchError as exc:
        logger.warning("csv_profile_parallel %s: %s; profiling the whole file instead", upload.name, exc)
        with upload.file.open("rb") as fileobj:
            result = profile_csv(
                fileobj,  # type: ignore[arg-type]
                size=upload.size,
                encoding=params.encoding or "utf-8",
                delimiter=params.delimiter,
            )
    except NotCSVError as exc:
        raise JobFailed(f"{upload.name} is not a CSV file we can read: {exc}") from None
    result["file"] = upload.name
    return result


@split_job_kind(
    "csv_profile_parallel",
    params=CsvProfileParallelParams,
    split=byte_ranges,
    merge=merged_profile,
    size=range_bytes,
    queue="jobs",
    title="CSV profile in parallel",
    summary=_summary,
)
def profile_byte_range(params: CsvProfileParallelParams, item: dict[str, Any], recorder: ProgressRecorder) -> Any:
    """Profile one byte range of the upload (``tasks_app.csv.profile_csv_part``), recording bytes
    read of the range; returns its partial profile (JSON)."""
    upload = _open_upload(params)
    plan = CsvPlan.from_dict(item["plan"])

    def on_progress(done: int, size: int) -> None:
        recorder.set_progress(done, size, f"{done:,} of {size:,} bytes read")

    try:
        with upload.file.open("rb") as fileobj:
            return profile_csv_part(fileobj, plan, int(item["index"]), on_progress=on_progress)  # type: ignore[arg-type]
    except OSError as exc:
        raise JobFailed(f"could not read {upload.name}: {exc.strerror or exc}") from None
