"""Service settings: YAML < environment < flags, unknown keys with "did you mean", bad values named by source."""

from __future__ import annotations

from pathlib import Path

import pytest

from detect.serve.settings import DEFAULT_CONFIG, ROOT, load_settings


def test_the_project_file_loads_and_its_folders_are_relative_to_the_project() -> None:
    settings = load_settings(environ={})
    assert settings.model_dir == ROOT / "models"
    assert settings.data_dir == ROOT / "runs" / "serve"
    assert settings.database() == f"sqlite:///{ROOT / 'runs' / 'serve' / 'jobs.sqlite'}"
    assert DEFAULT_CONFIG.is_file()


def test_environment_overrides_the_file_and_flags_override_both(tmp_path: Path) -> None:
    config = tmp_path / "service.yaml"
    config.write_text("port: 9000\nmax_batch: 4\nmodel_dir: models\ncors_origins: [http://a.test]\n")
    environ = {"DETECT_SERVE_PORT": "9100", "DETECT_SERVE_CORS_ORIGINS": "http://b.test, http://c.test"}
    settings = load_settings(config, flags={"port": 9200, "device": None}, environ=environ)
    assert settings.port == 9200 and settings.max_batch == 4
    assert settings.cors_origins == ["http://b.test", "http://c.test"]
    assert settings.model_dir == tmp_path / "models"  # relative to the file's folder
    assert load_settings(config, environ=environ).port == 9100


def test_the_config_file_can_come_from_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "s.yaml"
    config.write_text("queue_size: 3\n")
    assert load_settings(environ={"DETECT_SERVE_CONFIG": str(config)}).queue_size == 3


@pytest.mark.parametrize(("source", "message"), [
    ({"yaml": "max_bach: 3\n"}, "key 'max_bach': unknown service setting 'max_bach'; did you mean 'max_batch'?"),
    ({"env": {"DETECT_SERVE_DATABASE_ULR": "x"}}, "DETECT_SERVE_DATABASE_ULR: unknown service setting "
                                                  "'database_ulr'; did you mean 'database_url'?"),
    ({"flags": {"prot": 1}}, "flag --prot: unknown service setting 'prot'; did you mean 'port'?"),
    ({"env": {"DETECT_SERVE_PORT": "eighty"}}, "environment variable DETECT_SERVE_PORT: Input should be a valid integer"),
    ({"yaml": "max_batch: 0\n"}, "key 'max_batch': Input should be greater than or equal to 1"),
    ({"yaml": "api_key: short\n"}, "key 'api_key': String should have at least 8 characters"),
    ({"yaml": "- port\n"}, "expected a mapping of settings at the top level, got list"),
    ({"yaml": "port: [\n"}, "not valid YAML"),
])
def test_bad_settings_name_their_source(tmp_path: Path, source: dict, message: str) -> None:
    config = tmp_path / "service.yaml"
    config.write_text(source.get("yaml", ""))
    with pytest.raises(ValueError) as error:
        load_settings(config, flags=source.get("flags"), environ=source.get("env", {}))
    assert message in str(error.value)


def test_a_named_file_that_is_missing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="settings file not found"):
        load_settings(tmp_path / "nope.yaml", environ={})
