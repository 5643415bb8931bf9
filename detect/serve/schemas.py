"""The JSON the service answers with (pydantic models: the OpenAPI document is generated from them)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ModelRef(BaseModel):
    name: str = Field(description="the model's name (its file's stem)")
    version: str = Field(description="first 12 hex digits of the model file's SHA-256")
    backend: str = Field(description="torch, onnxruntime or torchscript")


class ImageSize(BaseModel):
    width: int
    height: int


class Detection(BaseModel):
    box: list[float] = Field(description="x1, y1, x2, y2 in pixels of the uploaded image", min_length=4, max_length=4)
    score: float
    label: int = Field(description="0-based class index")
    name: str = Field(description="class name")


class Timing(BaseModel):
    decode_ms: float = Field(description="reading the upload into pixels")
    queue_ms: float = Field(description="waiting for the model (dynamic batching)")
    preprocess_ms: float
    model_ms: float = Field(description="the model call, shared by the images of its batch")
    postprocess_ms: float
    total_ms: float = Field(description="from the request's arrival to the answer")


class DetectResponse(BaseModel):
    model: ModelRef
    image: ImageSize
    detections: list[Detection]
    batch_size: int = Field(description="images in the model call this one was part of")
    timing: Timing


class ModelInfo(ModelRef):
    file: str = Field(description="the model file's name in the model folder")
    size_bytes: int
    default: bool = Field(description="the model a request without ?model= gets")
    classes: list[str]
    iou: float = Field(description="NMS IoU threshold used when a request gives none")


class ModelList(BaseModel):
    models: list[ModelInfo]
    failed: dict[str, str] = Field(description="files of the model folder that could not be loaded, and why")


class Health(BaseModel):
    status: str = "ok"


class Readiness(BaseModel):
    ready: bool
    models: list[str]
    database: str = Field(description="'ok', or why the jobs database cannot be reached")
