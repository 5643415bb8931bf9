"""The JSON of the jobs API (pydantic models: the OpenAPI document is generated from them).

:class:`JobRequest` checks a ``POST /v1/jobs`` form's fields; :class:`JobOut`, :class:`JobPage`
and :class:`JobResult` are the answers.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from detect.serve.jobs.store import KINDS, STATES

JobKind = Literal[KINDS]  # type: ignore[valid-type]
JobState = Literal[STATES]  # type: ignore[valid-type]


class JobRequest(BaseModel):
    """The fields of ``POST /v1/jobs`` besides the video (form fields are text; numbers are parsed)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    kind: JobKind = Field(description="detect or track on an uploaded video, or evaluate a model on a dataset")
    model: str | None = Field(None, description="served model (GET /v1/models); default: the default model")
    dataset: str | None = Field(None, description="evaluate: a dataset path relative to the server's data root")
    split: str | None = Field(None, description="evaluate: the split (default: val, else test, else train)")
    conf: float | None = Field(None, ge=0.0, le=1.0, description="detect/track: score threshold (default 0.25)")
    iou: float | None = Field(None, gt=0.0, le=1.0, description="detect/track: NMS IoU threshold")
    max_det: int | None = Field(None, ge=1, le=1000, description="detect/track: detections kept a frame")
    classes: list[str] | None = Field(None, description="detect/track: keep only these classes (names or 0-based "
                                                        "indices, comma-separated)")
    stride: int | None = Field(None, ge=1, le=1000, description="detect/track: process every stride-th frame")

    @field_validator("classes", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [c.strip() for c in value.split(",") if c.strip()] or None
        return value

    @field_validator("model", "dataset", "split", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _fields_of_the_kind(self) -> JobRequest:
        video_fields = [f for f in ("conf", "iou", "max_det", "classes", "stride") if getattr(self, f) is not None]
        if self.kind == "evaluate":
            if self.dataset is None:
                raise ValueError("an evaluate job needs the field 'dataset' (a path under the data root)")
            if video_fields:
                raise ValueError(f"{', '.join(video_fields)}: for detect/track jobs only, not for evaluate")
        elif self.dataset is not None or self.split is not None:
            raise ValueError(f"dataset, split: for evaluate jobs only, not for {self.kind}")
        return self

    def params(self) -> dict[str, Any]:
        """The job's parameters as stored: the fields given, without kind and model."""
        return self.model_dump(exclude={"kind", "model"}, exclude_none=True)


class JobOut(BaseModel):
    """One job."""

    model_config = ConfigDict(protected_namespaces=())

    id: str = Field(description="32 hex digits")
    kind: JobKind
    state: JobState
    model: str
    params: dict[str, Any] = Field(description="the settings it was submitted with")
    progress: float | None = Field(description="fraction done, 0..1 (null while unknown)")
    processed: int = Field(description="frames (evaluate: images) done")
    total: int | None = Field(description="frames to do, from the video's frame count (null while unknown)")
    eta_seconds: float | None = Field(description="seconds left at the current rate (running jobs)")
    attempts: int = Field(description="runs started (a restart after a crash starts another)")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None = Field(description="why it failed")
    result_files: dict[str, str] | None = Field(description="file name -> URL, once it has ended")


class JobPage(BaseModel):
    jobs: list[JobOut] = Field(description="newest first")
    total: int = Field(description="jobs in all (of the state asked for)")
    limit: int
    offset: int


class JobResult(BaseModel):
    """What a succeeded job produced."""

    id: str
    kind: JobKind
    summary: dict[str, Any] | None = Field(description="detect/track: frames, detections, tracks, settings")
    metrics: dict[str, Any] | None = Field(description="evaluate: the dataset, split and headline metrics")
    files: dict[str, str] = Field(description="file name -> URL")
