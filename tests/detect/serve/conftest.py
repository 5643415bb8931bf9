"""Fixtures of the service tests (the job tests use them): the jobs database on SQLite and on PostgreSQL,
a tiny served model, tiny clips, a digit-scenes dataset under a data root, service settings.

PostgreSQL: ``DETECT_TEST_POSTGRES_URL`` (``.ci/run`` sets it) names a server whose role may create
schemas; without it, a throwaway cluster is started from Debian's server binaries
(``/usr/lib/postgresql/*/bin``; as the ``postgres`` user when the tests run as root) on a free
loopback port, and removed at the end. Each test gets its own schema. With neither, the
PostgreSQL cases are skipped, saying why.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
import torch
from job_clips import squares_clip

from classify.base.checkpoint import save_checkpoint
from detect.data.build import build_digit_scenes
from detect.data.scene_config import scene_config
from detect.models.registry import get_detector
from detect.serve.models import ModelStore
from detect.serve.settings import ServiceSettings

POSTGRES_ENV = "DETECT_TEST_POSTGRES_URL"
MODEL = "tiny"
CLASSES = [str(d) for d in range(10)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_cluster() -> tuple[str, Path, list[str], Path]:
    """A new PostgreSQL cluster on a free loopback port: (URL, data folder, command prefix, bin folder)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if not found:
        pytest.skip(f"PostgreSQL: {POSTGRES_ENV} is not set and no server binaries are installed "
                    "(/usr/lib/postgresql/*/bin; Debian package postgresql, which .ci/run installs)")
    bindir = Path(found[-1]).parent
    folder = Path(tempfile.mkdtemp(prefix="detect-pg-"))
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_postgres:
        shutil.chown(folder, "postgres", "postgres")
    data, port = folder / "data", _free_port()
    subprocess.run([*as_postgres, bindir / "initdb", "-D", data, "-U", "postgres", "-A", "trust", "--no-sync",
                    "-E", "UTF8"], check=True, capture_output=True, timeout=120)
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
    subprocess.run([*as_postgres, bindir / "pg_ctl", "-D", data, "-l", folder / "server.log", "-w", "-t", "60",
                    "-o", options, "start"], check=True, capture_output=True, timeout=120)
    return f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres", data, as_postgres, bindir


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """The URL of a PostgreSQL database the tests may create schemas in."""
    if os.environ.get(POSTGRES_ENV):
        yield os.environ[POSTGRES_ENV]
        return
    url, data, as_postgres, bindir = _start_cluster()
    try:
        yield url
    finally:
        subprocess.run([*as_postgres, bindir / "pg_ctl", "-D", data, "-m", "immediate", "stop"],
                       check=False, capture_output=True, timeout=60)
        shutil.rmtree(data.parent, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty jobs database: a SQLite file, or a new schema of the PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'db' / 'jobs.sqlite'}"
        return
    base = sa.make_url(request.getfixturevalue("postgres_url"))
    schema = f"test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    try:
        yield base.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder serving one seeded, untrained Faster R-CNN (ResNet-18, no FPN, 64 px) as ``tiny``,
    whose class ``1`` scores 0.997 on every proposal: a few confident, steady boxes a frame, so
    that ByteTrack starts tracks."""
    torch.manual_seed(0)
    kwargs = {"backbone": "resnet18", "fpn": False}
    model = get_detector("faster_rcnn", num_classes=10, image_size=64, **kwargs)
    with torch.no_grad():
        model.roi_heads.box_predictor.cls_score.bias[2] += 8.0  # column 0 is the background
    folder = tmp_path_factory.mktemp("models")
    save_checkpoint(folder / f"{MODEL}.pt", model.state_dict(), class_names=CLASSES,
                    config={"detector": "faster_rcnn", "image_size": 64, "detector_kwargs": kwargs})
    return folder


@pytest.fixture(scope="session")
def models(model_dir: Path) -> ModelStore:
    return ModelStore(model_dir, MODEL)


@pytest.fixture(scope="session")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root holding the tiny digit scenes at ``scenes/`` (COCO under ``scenes/coco``)."""
    root = tmp_path_factory.mktemp("data_root")
    build_digit_scenes(root / "scenes", scene_config("tiny"), progress=False)
    return root


@pytest.fixture
def settings(tmp_path: Path, model_dir: Path, data_root: Path) -> ServiceSettings:
    return ServiceSettings(model_dir=model_dir, default_model=MODEL, data_dir=tmp_path / "service",
                           data_root=data_root, max_video_mb=1.0, job_workers=1)


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    return squares_clip(tmp_path / "clip.avi")
