"""The service's settings: ``configs/service.yaml`` < ``DETECT_SERVE_*`` environment variables < flags.

Every source is checked by one pydantic model (:class:`ServiceSettings`, unknown keys refused):
an unknown key, in the YAML file or as an environment variable, is an error that names where it
came from and the closest known key ("did you mean ..."); a wrong value says what was expected.

    >>> settings = load_settings(flags={"port": 9000})
    >>> settings.database()           # 'sqlite:///<data_dir>/jobs.sqlite' unless database_url is set
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

ROOT = Path(__file__).resolve().parents[2]
#: the settings file read when none is named
DEFAULT_CONFIG = ROOT / "configs" / "service.yaml"
#: environment variables ``DETECT_SERVE_<KEY>`` set a key (``DETECT_SERVE_API_KEY``); lists are comma-separated
ENV_PREFIX = "DETECT_SERVE_"
#: an environment variable naming another settings file
ENV_CONFIG = "DETECT_SERVE_CONFIG"
MB = 1024 * 1024


class ServiceSettings(BaseModel):
    """What ``detect serve`` runs with (paths relative to the working directory)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field("127.0.0.1", description="address to listen on (0.0.0.0: every interface)")
    port: int = Field(8000, ge=0, le=65535, description="TCP port (0: a free one, printed at start)")
    model_dir: Path = Field(Path("models"), description="served models: every checkpoint (.pt) and exported "
                                                         "file (.onnx, .torchscript) in it, named by file stem")
    default_model: str = Field("digits-frcnn-r18", description="the model a request without ?model= gets")
    data_dir: Path = Field(Path("runs/serve"), description="the service's own files: jobs database, uploads, "
                                                            "job results")
    data_root: Path = Field(Path("data"), description="datasets evaluation jobs may name (paths confined to it)")
    database_url: str | None = Field(None, description="SQLAlchemy URL of the jobs database "
                                                       "(postgresql+psycopg://...); default SQLite in data_dir")
    device: str = Field("cpu", description="cpu, cuda, cuda:N or auto")
    threads: int | None = Field(None, ge=1, description="torch CPU threads (default: torch's)")
    max_batch: int = Field(8, ge=1, le=256, description="images a model call groups at most")
    max_wait_ms: float = Field(10.0, ge=0, le=10_000, description="how long a batch waits for more images")
    queue_size: int = Field(64, ge=1, description="images waiting for a model at most; more answer 503")
    max_upload_mb: float = Field(20.0, gt=0, description="largest image upload")
    max_video_mb: float = Field(500.0, gt=0, description="largest video upload (jobs)")
    max_pixels: int = Field(40_000_000, gt=0, description="largest image (width x height), checked before decoding")
    job_workers: int = Field(1, ge=1, le=64, description="jobs run at once")
    api_key: str | None = Field(None, min_length=8, description="when set, every route but /healthz and /readyz "
                                                                "needs 'Authorization: Bearer KEY' or 'X-API-Key: KEY'")
    cors_origins: list[str] = Field(default_factory=list, description="origins allowed by CORS (off when empty)")
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        return [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value

    def database(self) -> str:
        """The jobs database URL: ``database_url``, else SQLite at ``data_dir/jobs.sqlite``."""
        return self.database_url or f"sqlite:///{(self.data_dir / 'jobs.sqlite').resolve()}"

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * MB)

    @property
    def max_video_bytes(self) -> int:
        return int(self.max_video_mb * MB)


KEYS = tuple(ServiceSettings.model_fields)
#: keys holding a folder: relative in a settings file, they are relative to the file's folder (to the
#: project root for the project's own configs/service.yaml)
PATH_KEYS = ("model_dir", "data_dir", "data_root")


def load_settings(config: str | Path | None = None, flags: Mapping[str, Any] | None = None,
                  environ: Mapping[str, str] | None = None) -> ServiceSettings:
    """Settings from the YAML file ``config`` (default ``$DETECT_SERVE_CONFIG`` or the project's
    ``configs/service.yaml`` when present; see :data:`PATH_KEYS` for relative folders), then ``DETECT_SERVE_*`` variables of ``environ``
    (default ``os.environ``), then ``flags`` (``None`` values are not given).

    Raises:
        ValueError: an unknown key or a bad value, naming the file, variable or flag it came from.
        FileNotFoundError: a named settings file that does not exist.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}
    path = Path(config) if config else Path(environ[ENV_CONFIG]) if environ.get(ENV_CONFIG) else None
    if path is not None and not path.is_file():
        raise FileNotFoundError(f"settings file not found: {path}")
    path = path or (DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None)
    if path is not None:
        base = ROOT if path.resolve() == DEFAULT_CONFIG else path.resolve().parent
        for key, value in _read_yaml(path).items():
            if key in PATH_KEYS and isinstance(value, str) and not Path(value).is_absolute():
                value = str(base / value)
            _set(values, origin, key, value, f"{path}: key '{key}'")
    for name, value in environ.items():
        if name.startswith(ENV_PREFIX) and name != ENV_CONFIG:
            key = name[len(ENV_PREFIX):].lower()
            _set(values, origin, key, value, f"environment variable {name}")
    for key, value in (flags or {}).items():
        if value is not None:
            _set(values, origin, key, value, f"flag --{key.replace('_', '-')}")
    try:
        return ServiceSettings(**values)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            key = str(error["loc"][0]) if error["loc"] else ""
            problems.append(f"{origin.get(key, key)}: {error['msg']} (got {error.get('input')!r})")
        raise ValueError("invalid service settings:\n  " + "\n  ".join(problems)) from None


def _set(values: dict[str, Any], origin: dict[str, str], key: str, value: Any, where: str) -> None:
    if key not in KEYS:
        close = difflib.get_close_matches(key, KEYS, n=1, cutoff=0.6)
        hint = f"; did you mean '{close[0]}'?" if close else f"; known keys: {', '.join(KEYS)}"
        raise ValueError(f"{where}: unknown service setting '{key}'{hint}")
    values[key], origin[key] = value, where


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        tree = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML ({exc})") from None
    if tree is None:
        return {}
    if not isinstance(tree, dict):
        raise ValueError(f"{path}: expected a mapping of settings at the top level, got {type(tree).__name__}")
    return tree
