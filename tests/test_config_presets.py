"""Every YAML preset under configs/ loads into its config class."""

from __future__ import annotations

from pathlib import Path

import pytest

from classify.base.config import load_config
from classify.engine.config import TrainConfig
from detect.data.scene_config import SceneConfig
from detect.engine.config import DetectTrainConfig
from detect.serve.settings import ServiceSettings, load_settings

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
CLASSES = {"scenes": SceneConfig, "train": DetectTrainConfig, "classify": TrainConfig}


@pytest.mark.parametrize("path", sorted(CONFIGS.rglob("*.yaml")), ids=lambda p: str(p.relative_to(CONFIGS)))
def test_preset_loads(path: Path) -> None:
    if path.stem == "service":  # the service's settings: pydantic, not a config dataclass
        assert isinstance(load_settings(path, environ={}), ServiceSettings)
        return
    kind = next((k for k in CLASSES if path.stem.startswith(k)), None)
    if kind is None:
        pytest.fail(f"{path}: no config class is known for this preset; add it to CLASSES")
    assert isinstance(load_config(CLASSES[kind], path), CLASSES[kind])
