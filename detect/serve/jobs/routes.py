"""``/v1/jobs``: long work run by the job workers, followed by polling.

* ``POST /v1/jobs`` — a multipart form: ``kind`` (detect, track, evaluate), ``model``, and
  ``file`` (the video) with ``conf``, ``iou``, ``max_det``, ``classes``, ``stride`` for detect/track,
  or ``dataset`` (under the server's data root) and ``split`` for evaluate. Everything is checked
  before the job exists: the video is streamed to disk within ``max_video_mb`` (413), its content
  sniffed (415 for anything but a video, naming what it is), its container checked for truncation
  and its first frame decoded (422). 201 with the job and its ``Location``.
* ``GET /v1/jobs/{id}`` — state, progress, ETA, and the result files once it has ended.
* ``GET /v1/jobs/{id}/result`` — the summary (detect/track) or metrics (evaluate) and the files
  (409 unless it succeeded); ``GET /v1/jobs/{id}/result/{name}`` — one file (once it has ended:
  a cancelled or failed job keeps its partial files).
* ``DELETE /v1/jobs/{id}`` — cancel a queued or running job (409 once it has ended).
* ``GET /v1/jobs?limit=&offset=&state=`` — newest first.

Collaborators come from ``request.app.state``: ``settings``, ``models`` and ``jobs`` (the
:class:`~detect.serve.jobs.runner.JobRunner`, which holds the store).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from detect.inference.predictor import class_indices
from detect.inference.sniff import container_problem, read_head, sniff_video
from detect.inference.video import VideoOpenError, VideoReader
from detect.serve.errors import ERROR_RESPONSES, ApiError
from detect.serve.jobs import evaluate_job, video_job
from detect.serve.jobs.datasets import DatasetPathError, check_split, resolve_dataset
from detect.serve.jobs.runner import new_job_id
from detect.serve.jobs.schemas import JobOut, JobPage, JobRequest, JobResult, JobState
from detect.serve.jobs.store import Job
from detect.serve.jobs.upload import FILE_FIELD, ReceivedForm, receive_form
from detect.serve.uploads import describe_content

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

EXPECTED_VIDEO = "a video (MP4, AVI, WebM, MKV, MOV...)"
#: the files a job of each kind may leave, in the order they are listed
RESULT_FILES = {"detect": (video_job.PREDICTIONS, video_job.VIDEO, video_job.SUMMARY),
                "track": (video_job.PREDICTIONS, video_job.TRACKS, video_job.VIDEO, video_job.SUMMARY),
                "evaluate": evaluate_job.FILES}
MEDIA_TYPES = {".jsonl": "application/x-ndjson", ".webm": "video/webm", ".json": "application/json",
               ".txt": "text/plain; charset=utf-8", ".md": "text/markdown; charset=utf-8", ".png": "image/png"}
#: the upload's file name by container (FFmpeg reads the content either way)
_SUFFIXES = {"AVI": ".avi", "MP4": ".mp4", "Matroska": ".mkv", "MPEG-TS": ".ts", "MPEG-PS": ".mpg", "FLV": ".flv",
             "ASF": ".wmv"}

_FORM = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["kind"],
    "properties": {FILE_FIELD: {"type": "string", "format": "binary", "description": "detect/track: the video"}}
    | {name: {"type": "string", "description": f.description} for name, f in JobRequest.model_fields.items()},
}}}}}


@router.post("", status_code=201, response_model=JobOut, openapi_extra=_FORM,
             responses=ERROR_RESPONSES | {201: {"headers": {"Location": {"description": "the job's URL",
                                                                        "schema": {"type": "string"}}}}})
async def submit_job(request: Request, response: Response) -> JobOut:
    """Submit a job (see the module docstring); it is queued and runs on the job workers."""
    runner = request.app.state.jobs
    job_id = new_job_id()
    runner.upload_dir.mkdir(parents=True, exist_ok=True)
    upload = runner.upload_dir / f"{job_id}.part"
    form = await receive_form(request, upload, request.app.state.settings.max_video_bytes)
    try:
        job = await run_in_threadpool(_submit, request.app.state, job_id, form)
    except BaseException:
        for left in runner.upload_dir.glob(f"{job_id}.*"):  # the upload, renamed or not
            left.unlink(missing_ok=True)
        raise
    response.headers["Location"] = request.url_for("get_job", job_id=job.id).path
    return _out(request, job)


def _submit(state: Any, job_id: str, form: ReceivedForm) -> Job:
    """Check the form and queue its job (runs in a worker thread: it reads files and the database)."""
    asked = _job_request(form.fields)
    served = state.models.get(asked.model)
    params = asked.params()
    if asked.kind == "evaluate":
        if form.file is not None:
            raise ApiError(422, "an evaluate job takes no file", expected="the fields dataset (and split)",
                           got=f"a file {form.filename!r}")
        _check_dataset(state.settings.data_root, asked)
        return state.jobs.submit(job_id, "evaluate", served.name, params)
    if form.file is None:
        raise ApiError(422, f"a {asked.kind} job needs a video in the form field '{FILE_FIELD}'",
                       expected=EXPECTED_VIDEO, got=f"the fields {', '.join(form.fields) or 'none'}")
    try:
        class_indices(asked.classes, served.class_names)
    except ValueError as exc:
        raise ApiError(422, str(exc), expected=f"classes of {served.name}", got=", ".join(asked.classes)) from None
    video, frames = _check_video(form)
    total = None if frames is None else math.ceil(frames / (asked.stride or 1))
    return state.jobs.submit(job_id, asked.kind, served.name, params, video, total)


def _job_request(fields: dict[str, str]) -> JobRequest:
    try:
        return JobRequest(**fields)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'form'}: {e['msg'].removeprefix('Value error, ')}"
                             for e in exc.errors())
        got = "; ".join(f"{'.'.join(map(str, e['loc']))}={e['input']!r}" for e in exc.errors() if e["loc"]) or None
        raise ApiError(422, f"invalid job: {problems}", expected="the fields of POST /v1/jobs (see /docs)",
                       got=got) from None


def _check_dataset(data_root: Path, asked: JobRequest) -> None:
    try:
        check_split(resolve_dataset(data_root, asked.dataset), asked.dataset, asked.split)
    except DatasetPathError as exc:
        raise ApiError(422, str(exc), expected=exc.expected, got=exc.got) from None


def _check_video(form: ReceivedForm) -> tuple[Path, int | None]:
    """The upload renamed after its container, and its frame count (None when not announced).

    Raises:
        ApiError: 400 empty; 415 not a video; 422 a truncated container or no readable frame.
    """
    path = form.file
    if form.size == 0:
        raise ApiError(400, "the uploaded video is empty", expected=EXPECTED_VIDEO, got="0 bytes")
    container = sniff_video(path)
    if not container:
        raise ApiError(415, "the upload is not a video", expected=EXPECTED_VIDEO,
                       got=describe_content(read_head(path)))
    problem = container_problem(path)
    if problem:
        raise ApiError(422, f"the {container} video is incomplete: {problem}", expected=f"a complete {container} file",
                       got=f"{form.size} bytes")
    try:
        with VideoReader(path) as reader:
            frames = reader.frame_count
    except VideoOpenError as exc:
        raise ApiError(422, f"the {container} video cannot be read: {exc.reason}",
                       expected="a video with a readable frame", got=f"{form.size} bytes of {container}") from None
    video = path.with_suffix(_SUFFIXES.get(container, ".video"))
    os.replace(path, video)
    return video, frames


@router.get("", response_model=JobPage, responses=ERROR_RESPONSES)
def list_jobs(request: Request, limit: Annotated[int, Query(ge=1, le=100)] = 20,
              offset: Annotated[int, Query(ge=0)] = 0, state: JobState | None = None) -> JobPage:
    """One page of jobs, newest first."""
    jobs, total = request.app.state.jobs.store.list(limit, offset, state)
    return JobPage(jobs=[_out(request, job) for job in jobs], total=total, limit=limit, offset=offset)


@router.get("/{job_id}", response_model=JobOut, responses=ERROR_RESPONSES)
def get_job(request: Request, job_id: str) -> JobOut:
    """A job: its state, progress and ETA, and its result files once it has ended."""
    return _out(request, _job(request, job_id))


@router.delete("/{job_id}", response_model=JobOut, responses=ERROR_RESPONSES)
def cancel_job(request: Request, job_id: str) -> JobOut:
    """Cancel a queued or running job: a running one stops within a frame or two, its files kept."""
    job = _job(request, job_id)
    if not job.finished:
        job = request.app.state.jobs.cancel(job_id)
        if job.state == "cancelled":
            return _out(request, job)
    raise ApiError(409, f"job {job_id} already ended ({job.state}): there is nothing to cancel",
                   expected="a queued or running job", got=job.state)


@router.get("/{job_id}/result", response_model=JobResult, responses=ERROR_RESPONSES)
def job_result(request: Request, job_id: str) -> JobResult:
    """What a succeeded job produced: its summary or metrics, and its files."""
    job = _job(request, job_id)
    if job.state != "succeeded":
        why = f": {job.error}" if job.error else ""
        raise ApiError(409, f"job {job_id} has no result: it is {job.state}{why}", expected="a succeeded job",
                       got=job.state)
    evaluate = job.kind == "evaluate"
    return JobResult(id=job.id, kind=job.kind, summary=None if evaluate else job.result,
                     metrics=job.result if evaluate else None, files=_files(request, job))


@router.get("/{job_id}/result/{name}", response_class=FileResponse, responses=ERROR_RESPONSES | {
    200: {"description": "the file", "content": {t: {} for t in MEDIA_TYPES.values()}}})
def job_file(request: Request, job_id: str, name: str) -> FileResponse:
    """One file of an ended job (``GET /v1/jobs/{id}`` lists them)."""
    job = _job(request, job_id)
    if not job.finished:
        raise ApiError(409, f"job {job_id} is {job.state}: its files are served once it has ended",
                       expected="an ended job", got=job.state)
    files = _existing(job)
    if name not in files:
        raise ApiError(404, f"job {job_id} has no file {name!r}", expected=f"one of {', '.join(files) or '(none)'}",
                       got=name, code="file_not_found")
    return FileResponse(Path(job.output_dir) / name, media_type=MEDIA_TYPES[Path(name).suffix], filename=name)


def _job(request: Request, job_id: str) -> Job:
    job = request.app.state.jobs.store.get(job_id)
    if job is None:
        raise ApiError(404, f"no job {job_id!r}", expected="the id of a job (GET /v1/jobs lists them)", got=job_id,
                       code="job_not_found")
    return job


def _existing(job: Job) -> list[str]:
    """The result files the job has written."""
    return [name for name in RESULT_FILES[job.kind] if (Path(job.output_dir) / name).is_file()]


def _files(request: Request, job: Job) -> dict[str, str]:
    return {name: request.url_for("job_file", job_id=job.id, name=name).path for name in _existing(job)}


def _out(request: Request, job: Job) -> JobOut:
    return JobOut(id=job.id, kind=job.kind, state=job.state, model=job.model, params=job.params,
                  progress=job.progress, processed=job.processed, total=job.total, eta_seconds=job.eta_seconds(),
                  attempts=job.attempts, created_at=job.created_at, started_at=job.started_at,
                  finished_at=job.finished_at, error=job.error,
                  result_files=_files(request, job) if job.finished else None)
