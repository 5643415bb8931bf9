"""classify.base.config: YAML presets and flags -> frozen dataclasses, every error path, round trips."""

from __future__ import annotations  # field types are strings: load_config must resolve them

import argparse
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from classify.base.config import (
    add_config_arguments,
    check_fields,
    config_from_args,
    config_keys,
    config_to_dict,
    load_config,
    param,
    save_config,
)


@dataclass(frozen=True)
class Optim:
    name: str = param("sgd", choices=("sgd", "adamw"), help="optimizer")
    lr: float = param(0.01, gt=0, le=10, help="peak learning rate (100% = 1.0)")
    momentum: float = param(0.9, ge=0, lt=1)
    nesterov: bool = False


@dataclass(frozen=True)
class Train:
    epochs: int = param(10, ge=1, le=1000, help="passes over the data")
    size: tuple[int, int] = param((320, 320), ge=32, le=4096, help="input height and width")
    means: tuple[float, ...] = param((0.485, 0.456, 0.406), ge=0, le=1)
    amp: bool = True
    data: Path = Path("data/mnist")
    weights: Path | None = None
    device: Literal["cpu", "cuda", "auto"] = "auto"
    seed: int | None = param(0, ge=0)
    crop: tuple[int, int] | None = None
    run_name: str = "exp"
    optim: Optim = field(default_factory=Optim)


@dataclass(frozen=True)
class Tuned:
    """A nested default that is not the nested class's own default."""

    optim: Optim = field(default_factory=lambda: Optim(name="adamw", lr=0.5))


@dataclass(frozen=True)
class Required:
    classes: int = param(ge=1)


@dataclass(frozen=True)
class Checked:
    low: int = 0
    high: int = 1

    def __post_init__(self) -> None:
        if self.low >= self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")


@pytest.fixture
def write(tmp_path: Path):
    def _write(text: str, name: str = "preset.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return _write


def _error(excinfo: pytest.ExceptionInfo) -> str:
    return str(excinfo.value)


# ----------------------------------------------------------------------------- loading


def test_defaults_without_a_file():
    assert load_config(Train) == Train()
    assert load_config(Train).optim.lr == 0.01


@pytest.mark.parametrize("text", ["", "# only a comment\n", "~\n"])
def test_empty_yaml_keeps_defaults(write, text):
    assert load_config(Train, write(text)) == Train()


def test_yaml_values_are_typed(write):
    path = write(
        "epochs: 3\n"
        "size: [64, 96]\n"
        "means: [0.5]\n"
        "amp: no\n"
        "data: /tmp/digits\n"
        "weights: runs/best.pt\n"
        "device: cpu\n"
        "seed: null\n"
        "crop: [48, 48]\n"
        "run_name: '2024'\n"
        "optim:\n"
        "  lr: 1e-3\n"  # a float, although PyYAML alone reads a string
        "  momentum: 0\n"  # an int is a valid float
    )
    cfg = load_config(Train, path)
    assert cfg == Train(
        epochs=3, size=(64, 96), means=(0.5,), amp=False, data=Path("/tmp/digits"),
        weights=Path("runs/best.pt"), device="cpu", seed=None, crop=(48, 48), run_name="2024",
        optim=Optim(lr=0.001, momentum=0.0),
    )
    assert isinstance(cfg.optim.momentum, float) and isinstance(cfg.size, tuple)


def test_nested_partial_mapping_keeps_other_nested_defaults(write):
    cfg = load_config(Train, write("optim:\n  name: adamw\n"))
    assert cfg.optim == Optim(name="adamw", lr=0.01, momentum=0.9)


def test_nested_partial_mapping_starts_from_the_fields_default(write):
    cfg = load_config(Tuned, write("optim:\n  momentum: 0.5\n"))
    assert cfg.optim == Optim(name="adamw", lr=0.5, momentum=0.5)


def test_empty_nested_section_keeps_defaults(write):
    assert load_config(Train, write("optim:\n")) == Train()


def test_yaml_merge_keys(write):
    cfg = load_config(Train, write("optim: {<<: {lr: 0.3, momentum: 0.5}, lr: 0.4}\n"))
    assert (cfg.optim.lr, cfg.optim.momentum) == (0.4, 0.5)


def test_overrides_beat_yaml_and_parse_strings(write):
    path = write("epochs: 3\noptim:\n  lr: 0.1\n  momentum: 0.8\n")
    cfg = load_config(Train, path, {
        "optim.lr": "3e-4", "amp": "false", "size": "128,128", "seed": "none", "epochs": 7,
        "device": "cuda",
    })
    assert (cfg.epochs, cfg.optim.lr, cfg.optim.momentum) == (7, 3e-4, 0.8)
    assert (cfg.amp, cfg.size, cfg.seed, cfg.device) == (False, (128, 128), None, "cuda")


def test_nested_mapping_override_merges_into_yaml(write):
    cfg = load_config(Train, write("optim:\n  lr: 0.1\n"), {"optim": {"momentum": 0.5}})
    assert (cfg.optim.lr, cfg.optim.momentum) == (0.1, 0.5)


@pytest.mark.parametrize("word, value", [("true", True), ("YES", True), ("1", True),
                                          ("false", False), ("no", False), ("0", False)])
def test_bool_words_from_overrides(word, value):
    assert load_config(Train, overrides={"amp": word}).amp is value


def test_config_keys():
    assert config_keys(Train)[-4:] == ["optim.name", "optim.lr", "optim.momentum", "optim.nesterov"]
    assert "optim" in config_keys(Train, sections=True) and "optim" not in config_keys(Train)


def test_frozen():
    cfg = load_config(Train)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.epochs = 5  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.optim.lr = 1.0  # type: ignore[misc]


# ----------------------------------------------------------------------------- errors


def test_unknown_key_suggests_closest(write):
    path = write("epochs: 3\nepoch: 4\n")
    with pytest.raises(ValueError) as excinfo:
        load_config(Train, path)
    assert _error(excinfo) == f"unknown key 'epoch' in {path}:2; did you mean 'epochs'?"


def test_nested_unknown_key_suggests_dotted_key(write):
    path = write("optim:\n  lrr: 0.1\n")
    with pytest.raises(ValueError) as excinfo:
        load_config(Train, path)
    assert _error(excinfo) == f"unknown key 'optim.lrr' in {path}:2; did you mean 'optim.lr'?"


def test_unknown_key_at_wrong_level_suggests_the_nested_key(write):
    with pytest.raises(ValueError, match=r"unknown key 'lr' .*did you mean 'optim\.lr'\?"):
        load_config(Train, write("lr: 0.1\n"))


def test_unknown_key_without_close_match_lists_valid_keys(write):
    with pytest.raises(ValueError, match=r"unknown key 'zzzz' .*valid keys are: epochs, size, .*optim\.lr"):
        load_config(Train, write("zzzz: 1\n"))


def test_unknown_override_key():
    with pytest.raises(ValueError) as excinfo:
        load_config(Train, overrides={"optim.lrr": 0.1})
    assert _error(excinfo) == "unknown key 'optim.lrr' in overrides; did you mean 'optim.lr'?"


def test_override_below_a_leaf_key():
    with pytest.raises(ValueError, match=r"unknown key 'epochs\.x' in overrides: 'epochs' is a int value"):
        load_config(Train, overrides={"epochs.x": 1})


@pytest.mark.parametrize("text, message", [
    ("epochs: ten\n", "invalid value for 'epochs' in {path}:1: expected int, got 'ten' (str)"),
    ("epochs: 2.5\n", "invalid value for 'epochs' in {path}:1: expected int, got 2.5 (float)"),
    ("epochs: true\n", "invalid value for 'epochs' in {path}:1: expected int, got True (bool)"),
    ("amp: 1\n", "invalid value for 'amp' in {path}:1: expected bool (true or false), got 1 (int)"),
    ("amp: 'true'\n", "invalid value for 'amp' in {path}:1: expected bool (true or false), got 'true' (str)"),
    ("run_name: 2024\n", "invalid value for 'run_name' in {path}:1: expected str (quote it in YAML), got 2024 (int)"),
    ("data: 3\n", "invalid value for 'data' in {path}:1: expected path, got 3 (int)"),
    ("seed: abc\n", "invalid value for 'seed' in {path}:1: expected int or null, got 'abc' (str)"),
    ("device: gpu\n", "invalid value for 'device' in {path}:1: expected one of 'cpu', 'cuda', 'auto', got 'gpu' (str); did you mean 'cpu'?"),
    ("\n\noptim:\n  lr: fast\n", "invalid value for 'optim.lr' in {path}:4: expected float, got 'fast' (str)"),
    ("optim: 3\n", "invalid value for 'optim' in {path}:1: expected a mapping of Optim keys, got 3 (int)"),
    ("size: 320\n", "invalid value for 'size' in {path}:1: expected list of 2 int, got 320 (int)"),
])
def test_wrong_type(write, text, message):
    path = write(text)
    with pytest.raises(ValueError) as excinfo:
        load_config(Train, path)
    assert _error(excinfo) == message.format(path=path)


@pytest.mark.parametrize("text, message", [
    ("epochs: 0\n", "invalid value for 'epochs' in {path}:1: expected int >= 1 and <= 1000, got 0 (int)"),
    ("optim:\n  lr: -0.1\n", "invalid value for 'optim.lr' in {path}:2: expected float > 0 and <= 10, got -0.1 (float)"),
    ("optim:\n  momentum: 1\n", "invalid value for 'optim.momentum' in {path}:2: expected float >= 0 and < 1, got 1.0 (float)"),
    ("seed: -1\n", "invalid value for 'seed' in {path}:1: expected int >= 0, got -1 (int)"),
    ("size: [320, 8]\n", "invalid value for 'size[1]' in {path}:1: expected int >= 32 and <= 4096, got 8 (int)"),
    ("means: [0.5, 1.5]\n", "invalid value for 'means[1]' in {path}:1: expected float >= 0 and <= 1, got 1.5 (float)"),
])
def test_out_of_range(write, text, message):
    path = write(text)
    with pytest.raises(ValueError) as excinfo:
        load_config(Train, path)
    assert _error(excinfo) == message.format(path=path)


def test_not_in_choices_suggests_closest(write):
    path = write("optim:\n  name: adam\n")
    with pytest.raises(ValueError) as excinfo:
        load_config(Train, path)
    assert _error(excinfo) == (f"invalid value for 'optim.name' in {path}:2: expected one of 'sgd', "
                               "'adamw', got 'adam' (str); did you mean 'adamw'?")


@pytest.mark.parametrize("text, message", [
    ("size: [320, 320, 3]\n", "invalid value for 'size' in {path}:1: expected list of 2 int, got [320, 320, 3] (list of 3)"),
    ("size: [320]\n", "invalid value for 'size' in {path}:1: expected list of 2 int, got [320] (list of 1)"),
    ("size: [320, a]\n", "invalid value for 'size[1]' in {path}:1: expected int, got 'a' (str)"),
    ("crop: [1, 2, 3]\n", "invalid value for 'crop' in {path}:1: expected list of 2 int or null, got [1, 2, 3] (list of 3)"),
])
def test_bad_tuple(write, text, message):
    path = write(text)
    with pytest.raises(ValueError) as excinfo:
        load_config(Train, path)
    assert _error(excinfo) == message.format(path=path)


def test_bad_tuple_length_from_overrides():
    with pytest.raises(ValueError, match=r"'size' in overrides: expected list of 2 int, got '1,2,3' \(str\)"):
        load_config(Train, overrides={"size": "1,2,3"})


@pytest.mark.parametrize("text, kind", [("- 1\n- 2\n", "a list"), ("just text\n", "a scalar 'just text'")])
def test_top_level_not_a_mapping(write, text, kind):
    path = write(text)
    with pytest.raises(ValueError) as excinfo:
        load_config(Train, path)
    assert _error(excinfo) == f"the top level of {path} must be a mapping of config keys (key: value lines), got {kind}"


def test_duplicate_key(write):
    path = write("epochs: 1\nseed: 2\nepochs: 3\n")
    with pytest.raises(ValueError, match=rf"duplicate key 'epochs' in {path}:3 \(first given on line 1\)"):
        load_config(Train, path)


def test_invalid_yaml(write):
    path = write("epochs: [1, 2\n")
    with pytest.raises(ValueError, match=rf"cannot parse YAML in {path}"):
        load_config(Train, path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="config file not found"):
        load_config(Train, tmp_path / "nope.yaml")


def test_missing_required_key(write):
    with pytest.raises(ValueError, match=r"missing required key 'classes' in the defaults"):
        load_config(Required)
    assert load_config(Required, write("classes: 10\n")).classes == 10


def test_post_init_error_names_the_source(write):
    path = write("low: 5\nhigh: 2\n")
    with pytest.raises(ValueError, match=rf"invalid Checked config from {path}: low \(5\) must be below high \(2\)"):
        load_config(Checked, path)


def test_bad_config_classes():
    @dataclass
    class Mutable:
        x: int = 1

    @dataclass(frozen=True)
    class Lists:
        x: list = field(default_factory=list)

    with pytest.raises(TypeError, match=r"must be declared @dataclass\(frozen=True\)"):
        load_config(Mutable)
    with pytest.raises(TypeError, match=r"Lists\.x: unsupported config type .*use bool, int"):
        load_config(Lists)
    with pytest.raises(TypeError, match="expected a dataclass type"):
        load_config(dict)  # type: ignore[arg-type]


def test_param_default_out_of_range():
    with pytest.raises(ValueError, match=r"param\(default=-1\): the default is not >= 0"):
        param(-1, ge=0)
    with pytest.raises(ValueError, match=r"the default is not one of 'a', 'b'"):
        param("c", choices=("a", "b"))


# ----------------------------------------------------------------------------- saving


def test_config_to_dict_is_plain():
    d = config_to_dict(Train(weights=Path("w.pt")))
    assert d["size"] == [320, 320] and d["data"] == "data/mnist" and d["weights"] == "w.pt"
    assert d["optim"] == {"name": "sgd", "lr": 0.01, "momentum": 0.9, "nesterov": False}
    assert yaml.safe_load(yaml.safe_dump(d)) == d
    with pytest.raises(TypeError, match="expected a config dataclass instance"):
        config_to_dict({"a": 1})


def test_save_load_round_trip(tmp_path):
    cfg = Train(epochs=5, size=(64, 32), means=(), amp=False, weights=Path("w.pt"), seed=None,
                crop=(8, 8), run_name="1e-3", optim=Optim(name="adamw", lr=1e-5, nesterov=True))
    path = save_config(cfg, tmp_path / "sub" / "cfg.yaml")
    assert load_config(Train, path) == cfg
    assert "run_name: '1e-3'" in path.read_text()  # a string that looks like a float stays a string
    assert list(tmp_path.joinpath("sub").iterdir()) == [path]  # no temporary file left behind


def test_saved_strings_that_look_like_bools_or_null_stay_strings(tmp_path):
    for name in ("yes", "no", "null", "~", "1", "0.5", "true"):
        cfg = Train(run_name=name)
        assert load_config(Train, save_config(cfg, tmp_path / "c.yaml")) == cfg


def test_unicode_is_saved_readable_and_awkward_characters_escaped(tmp_path):
    readable = save_config(Train(run_name="données"), tmp_path / "a.yaml")
    assert "run_name: données" in readable.read_text(encoding="utf-8")
    awkward = Train(run_name="a\x85b")  # PyYAML folds an unescaped NEL into a space
    assert load_config(Train, save_config(awkward, tmp_path / "b.yaml")) == awkward


# ----------------------------------------------------------------------------- command line


def _parser(cls: type = Train, prefix: str = "") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="train")
    add_config_arguments(parser, cls, prefix)
    return parser


def test_cli_flags_override_yaml(write):
    path = write("epochs: 3\nsize: [64, 64]\noptim:\n  lr: 0.1\n  momentum: 0.5\n")
    args = _parser().parse_args(["--config", str(path), "--optim.lr", "0.2", "--size", "96", "128",
                                 "--amp", "false", "--weights", "best.pt", "--device", "cpu"])
    cfg = config_from_args(Train, args)
    assert (cfg.epochs, cfg.optim.momentum) == (3, 0.5)  # from YAML: no flag given
    assert (cfg.optim.lr, cfg.size, cfg.amp, cfg.weights, cfg.device) == (0.2, (96, 128), False, Path("best.pt"), "cpu")


def test_cli_without_config_file_uses_defaults():
    assert config_from_args(Train, _parser().parse_args([])) == Train()
    assert vars(_parser().parse_args([])) == {"config": None}  # only given flags reach the namespace


def test_cli_bare_bool_flag_and_none():
    args = _parser().parse_args(["--optim.nesterov", "--amp", "no", "--seed", "none", "--crop", "none",
                                 "--means"])
    cfg = config_from_args(Train, args)
    assert (cfg.optim.nesterov, cfg.amp, cfg.seed, cfg.crop, cfg.means) == (True, False, None, None, ())


def test_cli_errors_name_the_flag():
    with pytest.raises(ValueError) as excinfo:
        config_from_args(Train, _parser().parse_args(["--optim.lr", "-1"]))
    assert _error(excinfo) == ("invalid value for 'optim.lr' in command-line flag --optim.lr: "
                               "expected float > 0 and <= 10, got -1.0 (float)")
    with pytest.raises(ValueError, match=r"'amp' in command-line flag --amp: expected bool \(true or false\), got 'maybe'"):
        config_from_args(Train, _parser().parse_args(["--amp", "maybe"]))


def test_cli_tuple_needs_exactly_two_values(capsys):
    with pytest.raises(SystemExit):
        _parser().parse_args(["--size", "320"])
    assert "--size: expected 2 arguments" in capsys.readouterr().err


def test_cli_unknown_flag_is_rejected(capsys):
    with pytest.raises(SystemExit):
        _parser().parse_args(["--optim.lrr", "0.1"])
    assert "unrecognized arguments: --optim.lrr" in capsys.readouterr().err


def test_cli_help_shows_help_type_range_and_default():
    text = " ".join(_parser().format_help().split())
    assert "--optim.lr FLOAT peak learning rate (100% = 1.0) (float; > 0 and <= 10; default: 0.01)" in text
    assert "--size INT INT input height and width (list of 2 int; >= 32 and <= 4096; default: 320 320)" in text
    assert "--device {cpu,cuda,auto}" in text and "--amp [{true,false}]" in text
    assert "--config PATH" in text


def test_cli_prefix_keeps_configs_apart(write):
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, Train, prefix="train.")
    add_config_arguments(parser, Optim, prefix="eval.")
    path = write("epochs: 4\n")
    args = parser.parse_args(["--train.config", str(path), "--train.optim.lr", "0.3", "--eval.lr", "0.7"])
    assert config_from_args(Train, args, prefix="train.") == Train(epochs=4, optim=Optim(lr=0.3))
    assert config_from_args(Optim, args, prefix="eval.") == Optim(lr=0.7)


# ----------------------------------------------------------------------------- properties


_names = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
_optims = st.builds(
    Optim,
    name=st.sampled_from(["sgd", "adamw"]),
    lr=st.floats(0, 10, exclude_min=True),
    momentum=st.floats(0, 1, exclude_max=True),
    nesterov=st.booleans(),
)
_trains = st.builds(
    Train,
    epochs=st.integers(1, 1000),
    size=st.tuples(st.integers(32, 4096), st.integers(32, 4096)),
    means=st.lists(st.floats(0, 1), max_size=4).map(tuple),
    amp=st.booleans(),
    data=_names.map(Path),
    weights=st.none() | _names.map(Path),
    device=st.sampled_from(["cpu", "cuda", "auto"]),
    seed=st.none() | st.integers(0, 2**63),
    crop=st.none() | st.tuples(st.integers(-5, 5), st.integers(-5, 5)),
    run_name=_names,
    optim=_optims,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cfg=_trains)
def test_property_save_load_round_trip(tmp_path, cfg):
    path = save_config(cfg, tmp_path / "cfg.yaml")
    assert load_config(Train, path) == cfg
    assert config_to_dict(load_config(Train, path)) == config_to_dict(cfg)


def _flags(cfg: Train) -> list[str]:
    """The command line that states every numeric and bool field of ``cfg``."""
    return ["--epochs", str(cfg.epochs), "--size", *map(str, cfg.size), "--means", *map(repr, cfg.means),
            "--amp", str(cfg.amp).lower(), "--seed", str(cfg.seed).lower(),
            "--optim.lr", repr(cfg.optim.lr), "--optim.momentum", repr(cfg.optim.momentum),
            "--optim.nesterov", str(cfg.optim.nesterov), "--optim.name", cfg.optim.name]


@settings(max_examples=100, deadline=None)
@given(cfg=_trains.map(lambda c: dataclasses.replace(c, data=Path("d"), weights=None, crop=None, run_name="r")))
def test_property_cli_flags_round_trip(cfg):
    args = _parser().parse_args(["--data", "d", "--run-name", "r", "--device", cfg.device, *_flags(cfg)])
    assert config_from_args(Train, args) == cfg


def test_base_instance_sits_under_yaml_and_overrides(tmp_path: Path) -> None:
    @dataclass(frozen=True)
    class Preset:
        size: int = 10
        name: str = "plain"
        rate: float = 0.5

    yaml_path = tmp_path / "p.yaml"
    yaml_path.write_text("name: from-yaml\n")
    cfg = load_config(Preset, yaml_path, {"rate": "0.25"}, base=Preset(size=99, name="preset", rate=0.9))
    assert cfg == Preset(size=99, name="from-yaml", rate=0.25)


@dataclass(frozen=True)
class _Checked:
    size: int = param(32, ge=8, help="px")
    mode: str = param("a", choices=("a", "b"))

    def __post_init__(self) -> None:
        check_fields(self)


def test_check_fields_validates_direct_construction() -> None:
    assert _Checked(size=8, mode="b").size == 8
    with pytest.raises(ValueError, match=r"_Checked.size: expected int >= 8, got 4"):
        _Checked(size=4)
    with pytest.raises(ValueError, match=r"_Checked.mode: expected one of 'a', 'b', got 'c'"):
        _Checked(mode="c")
    with pytest.raises(TypeError, match=r"_Checked.size: expected int, got 32.0"):
        _Checked(size=32.0)  # type: ignore[arg-type]
