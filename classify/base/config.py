"""Typed configuration: YAML presets and command-line flags -> frozen dataclasses.

A config is a ``@dataclass(frozen=True)`` whose fields carry their constraints in metadata::

    @dataclass(frozen=True)
    class Optim:
        lr: float = param(0.01, gt=0, help="peak learning rate")
        name: str = param("sgd", choices=("sgd", "adamw"))

    @dataclass(frozen=True)
    class Train:
        epochs: int = param(10, ge=1)
        size: tuple[int, int] = param((320, 320), ge=32)
        optim: Optim = field(default_factory=Optim)

    cfg = load_config(Train, "configs/classify/mnist.yaml", {"optim.lr": "3e-4"})

Precedence, lowest first: dataclass defaults, the YAML file, the overrides (the flags a user
actually gave on the command line). A YAML file is a mapping; a nested dataclass field is a
nested mapping, or a dotted key in overrides (``"optim.lr"``).

Types understood: ``int``, ``float`` (ints accepted), ``bool``, ``str``, ``pathlib.Path``,
``tuple[X, Y]`` and ``tuple[X, ...]`` (YAML lists), ``Literal[...]``, ``X | None`` and nested
frozen dataclasses. YAML values must already have the field's type (``"3"`` is not an int);
override values may also be strings, as a command line gives them, and are parsed: ``"3"``,
``"1e-3"``, ``"true"/"false"/"yes"/"no"/"1"/"0"``, ``"none"/"null"`` for optional fields and
``"320,320"`` for tuples. On the command line itself tuples are space separated
(``--size 320 320``). Bounds (``ge``/``gt``/``le``/``lt``) and ``choices`` apply to the value,
or to each item of a tuple. YAML floats may be written ``1e-3`` (YAML 1.2; PyYAML alone would
read a string).

Every mistake is a ``ValueError`` that names the dotted key, where the value came from
(``file:line``, ``overrides`` or the command-line flag), what was expected and what came; an
unknown key suggests the closest valid keys. A config class that cannot be read (not a frozen
dataclass, an unsupported field type) is a ``TypeError``.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import numbers
import os
import re
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import MISSING, dataclass
from pathlib import Path, PurePath
from typing import Any, Literal, TypeVar, Union

import yaml

from classify.base.atomic import write_text_atomic
from classify.base.paths import require_file

__all__ = [
    "Constraints",
    "add_config_arguments",
    "config_from_args",
    "config_keys",
    "config_to_dict",
    "load_config",
    "param",
    "save_config",
]

T = TypeVar("T")

_METADATA_KEY = "classify.base.config"
_NONE = type(None)
_TRUE_WORDS = frozenset({"true", "yes", "1"})
_FALSE_WORDS = frozenset({"false", "no", "0"})
_NULL_WORDS = frozenset({"none", "null", "~"})
_NULL_TAG = "tag:yaml.org,2002:null"
_MERGE_TAG = "tag:yaml.org,2002:merge"
# "1e-3" is a float in YAML 1.2 but a string to PyYAML's YAML 1.1 resolver; the loader and the
# dumper share this extra rule so that save -> load keeps strings strings and floats floats.
_EXPONENT_FLOAT = re.compile(r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$")


class _Loader(yaml.SafeLoader):
    """Safe YAML loader that also reads ``1e-3`` as a float."""


class _Dumper(yaml.SafeDumper):
    """Safe YAML dumper that quotes strings the loader would read as floats."""


for _cls in (_Loader, _Dumper):  # subclass-local: yaml.SafeLoader itself is left unchanged
    _cls.add_implicit_resolver("tag:yaml.org,2002:float", _EXPONENT_FLOAT, list("-+0123456789"))


# ----------------------------------------------------------------------------- declaring fields


@dataclass(frozen=True)
class Constraints:
    """What a field accepts beyond its type; stored in the field's metadata by :func:`param`."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple[Any, ...] | None = None
    help: str = ""

    def describe(self) -> str:
        """The bounds and choices as text, e.g. ``">= 0 and < 1"``; empty when unconstrained."""
        limits = ((">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt))
        bounds = [f"{op} {v}" for op, v in limits if v is not None]
        if self.choices is not None:
            bounds.append("one of " + ", ".join(map(repr, self.choices)))
        return " and ".join(bounds)

    def violated(self, value: Any) -> bool:
        """Whether one scalar value breaks a bound or is not among the choices."""
        if self.choices is not None and value not in self.choices:
            return True
        if not isinstance(value, numbers.Real) or isinstance(value, bool):
            return False
        return not (
            (self.ge is None or value >= self.ge)
            and (self.gt is None or value > self.gt)
            and (self.le is None or value <= self.le)
            and (self.lt is None or value < self.lt)
        )


def param(
    default: Any = MISSING,
    *,
    default_factory: Callable[[], Any] | Any = MISSING,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: tuple[Any, ...] | list[Any] | None = None,
    help: str = "",
) -> Any:
    """A dataclass field with bounds, choices and help text for :func:`load_config` and the CLI.

    Bounds and choices apply to the value, or to each item when the value is a tuple.
    ``default_factory`` is for nested dataclass defaults; use tuples, not lists, for sequences.
    """
    spec = Constraints(ge, gt, le, lt, None if choices is None else tuple(choices), help)
    items = default if isinstance(default, tuple) else (default,)
    if default is not MISSING and default is not None and any(spec.violated(v) for v in items):
        raise ValueError(f"param(default={default!r}): the default is not {spec.describe()}")
    return dataclasses.field(default=default, default_factory=default_factory, metadata={_METADATA_KEY: spec})


# ----------------------------------------------------------------------------- reading the schema


@dataclass(frozen=True)
class _Field:
    name: str
    type: Any
    spec: Constraints
    default: Any  # MISSING when the field has none


def _schema(cls: type) -> dict[str, _Field]:
    """The init fields of a frozen dataclass with resolved types (string annotations included)."""
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"expected a dataclass type, got {cls!r}")
    if not getattr(cls, "__dataclass_params__").frozen:
        raise TypeError(f"config class {cls.__qualname__} must be declared @dataclass(frozen=True)")
    try:
        hints = typing.get_type_hints(cls)
    except NameError as exc:
        raise TypeError(f"cannot resolve the annotations of {cls.__qualname__}: {exc} "
                        "(define the types it names at module level)") from exc
    out = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        _check_supported(hints[f.name], f"{cls.__qualname__}.{f.name}")
        default = f.default if f.default_factory is MISSING else f.default_factory()
        out[f.name] = _Field(f.name, hints[f.name], f.metadata.get(_METADATA_KEY, Constraints()), default)
    return out


def _is_config(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _union_args(tp: Any) -> tuple[Any, ...] | None:
    return typing.get_args(tp) if typing.get_origin(tp) in (Union, types.UnionType) else None


def _section_type(tp: Any) -> type | None:
    """The dataclass behind a nested field (``Optim`` or ``Optim | None``), else None."""
    if _is_config(tp):
        return tp
    arms = [a for a in _union_args(tp) or () if a is not _NONE]
    return arms[0] if len(arms) == 1 and _is_config(arms[0]) else None


def _tuple_items(tp: Any, n: int | None) -> list[Any] | None:
    """Item types of a ``tuple[...]`` for n items, or the fixed list when n is None."""
    args = typing.get_args(tp)
    if len(args) == 2 and args[1] is Ellipsis:
        return None if n is None else [args[0]] * n
    return list(args)


def _check_supported(tp: Any, where: str) -> None:
    if tp is Any or tp in (bool, int, float, str, _NONE) or _is_config(tp):
        return
    if isinstance(tp, type) and issubclass(tp, PurePath):
        return
    origin = typing.get_origin(tp)
    if origin is Literal:
        return
    if origin is tuple or _union_args(tp) is not None:
        for arg in typing.get_args(tp):
            if arg is not Ellipsis:
                _check_supported(arg, where)
        return
    raise TypeError(f"{where}: unsupported config type {tp!r}; use bool, int, float, str, Path, "
                    "tuple[...], Literal[...], X | None or a frozen dataclass")


def _describe(tp: Any) -> str:
    """A type as a user reads it: ``int``, ``list of 2 int``, ``one of 'a', 'b'``, ``float or null``."""
    if tp is _NONE:
        return "null"
    if _is_config(tp):
        return f"a mapping of {tp.__name__} keys"
    if isinstance(tp, type):
        return "path" if issubclass(tp, PurePath) else tp.__name__
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(map(repr, typing.get_args(tp)))
    arms = _union_args(tp)
    if arms is not None:
        return " or ".join(_describe(a) for a in arms)
    if typing.get_origin(tp) is tuple:
        items = _tuple_items(tp, None)
        if items is None:
            return f"list of {_describe(typing.get_args(tp)[0])}"
        if len(set(items)) == 1:
            return f"list of {len(items)} {_describe(items[0])}"
        return f"list of {len(items)} [{', '.join(map(_describe, items))}]"
    return "any value" if tp is Any else str(tp)


# ----------------------------------------------------------------------------- checking values


class _Mismatch(Exception):
    """A value that does not fit; the caller adds the key and where it came from."""

    def __init__(self, expected: str, value: Any, suffix: str = "", hint: str = "") -> None:
        super().__init__(expected)
        self.expected, self.value, self.suffix, self.hint = expected, value, suffix, hint

    def at(self, index: int) -> _Mismatch:
        return _Mismatch(self.expected, self.value, f"[{index}]{self.suffix}", self.hint)


def _show(value: Any) -> str:
    if value is None:
        return "null"
    text = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
    kind = f"list of {len(value)}" if isinstance(value, (list, tuple)) else type(value).__name__
    return f"{text} ({kind})"


def _close(word: Any, candidates: list[Any]) -> str:
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, [c for c in candidates if isinstance(c, str)], n=3)
    return f"; did you mean {' or '.join(map(repr, close))}?" if close else ""


def _is_null_word(value: Any) -> bool:
    if isinstance(value, (list, tuple)) and len(value) == 1:  # `--size none` arrives as ["none"]
        value = value[0]
    return isinstance(value, str) and value.strip().lower() in _NULL_WORDS


def _coerce(value: Any, tp: Any, cli: bool) -> Any:
    """``value`` as type ``tp``; ``cli`` also parses strings. Raises :class:`_Mismatch`."""
    if tp is Any:
        return value
    if tp is _NONE:
        if value is None or (cli and _is_null_word(value)):
            return None
        raise _Mismatch("null", value)
    if _union_args(tp) is not None:
        return _coerce_union(value, tp, cli)
    origin = typing.get_origin(tp)
    if origin is Literal:
        return _coerce_literal(value, tp, cli)
    if origin is tuple:
        return _coerce_tuple(value, tp, cli)
    if _is_config(tp):
        if isinstance(value, tp):
            return value
        raise _Mismatch(_describe(tp), value)
    if issubclass(tp, PurePath):
        if isinstance(value, (str, os.PathLike)):
            return tp(value)
        raise _Mismatch("path", value)
    return _SCALARS[tp](value, cli)


def _to_bool(value: Any, cli: bool) -> bool:
    if isinstance(value, bool):
        return value
    word = value.strip().lower() if cli and isinstance(value, str) else None
    if word in _TRUE_WORDS or word in _FALSE_WORDS:
        return word in _TRUE_WORDS
    raise _Mismatch("bool (true or false)", value)


def _to_int(value: Any, cli: bool) -> int:
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if cli and isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise _Mismatch("int", value)


def _to_float(value: Any, cli: bool) -> float:
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    if cli and isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise _Mismatch("float", value)


def _to_str(value: Any, cli: bool) -> str:
    if isinstance(value, str):
        return value
    raise _Mismatch("str (quote it in YAML)", value)


_SCALARS: dict[type, Callable[[Any, bool], Any]] = {
    bool: _to_bool, int: _to_int, float: _to_float, str: _to_str,
}


def _coerce_union(value: Any, tp: Any, cli: bool) -> Any:
    arms = typing.get_args(tp)
    if _NONE in arms and (value is None or (cli and _is_null_word(value))):
        return None
    others = sorted((a for a in arms if a is not _NONE), key=lambda a: cli and a is str)  # "3" -> 3 first
    failure = None
    for arm in others:
        try:
            return _coerce(value, arm, cli)
        except _Mismatch as exc:
            failure = exc
    if len(others) == 1 and failure is not None and failure.suffix:
        raise failure  # keep the tuple item that failed
    raise _Mismatch(_describe(tp), value)


def _coerce_literal(value: Any, tp: Any, cli: bool) -> Any:
    choices = typing.get_args(tp)
    for choice in choices:
        if type(value) is type(choice) and value == choice:
            return choice
        if cli and isinstance(value, str) and not isinstance(choice, str):
            try:
                if _coerce(value, type(choice), cli) == choice:
                    return choice
            except _Mismatch:
                pass
    raise _Mismatch(_describe(tp), value, hint=_close(value, list(choices)))


def _coerce_tuple(value: Any, tp: Any, cli: bool) -> tuple[Any, ...]:
    given = value
    if cli and isinstance(value, str):
        value = [item.strip() for item in value.split(",")] if value.strip() else []
    if not isinstance(value, (list, tuple)):
        raise _Mismatch(_describe(tp), given)
    items = _tuple_items(tp, len(value))
    if len(items) != len(value):
        raise _Mismatch(_describe(tp), given)
    out = []
    for i, (item, item_tp) in enumerate(zip(value, items)):
        try:
            out.append(_coerce(item, item_tp, cli))
        except _Mismatch as exc:
            raise exc.at(i) from None
    return tuple(out)


def _check_constraints(value: Any, spec: Constraints) -> None:
    """Bounds and choices on a value, or on each item of a tuple. Raises :class:`_Mismatch`."""
    if isinstance(value, tuple):
        for i, item in enumerate(value):
            try:
                _check_constraints(item, spec)
            except _Mismatch as exc:
                raise exc.at(i) from None
    elif value is not None and spec.violated(value):
        kind = "" if spec.choices is not None else type(value).__name__ + " "
        hint = _close(value, list(spec.choices)) if spec.choices is not None else ""
        raise _Mismatch(kind + spec.describe(), value, hint=hint)


def from_preset(presets: Mapping[str, T], preset: str, kind: str, **overrides: Any) -> T:
    """``presets[preset]`` with ``overrides`` applied (``dataclasses.replace``); ``kind`` names the
    presets in errors (``"scene"`` -> "unknown scene preset ...").

    Raises:
        ValueError: an unknown preset or field, with the closest name ("did you mean ...").
    """
    import difflib

    if preset not in presets:
        close = difflib.get_close_matches(preset, list(presets), n=1)
        raise ValueError(f"unknown {kind} preset {preset!r}; known: {sorted(presets)}"
                         + (f"; did you mean {close[0]!r}?" if close else ""))
    base = presets[preset]
    names = {f.name for f in dataclasses.fields(base)}
    for key in overrides:
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            raise ValueError(f"unknown {type(base).__name__} field {key!r}"
                             + (f"; did you mean {close[0]!r}?" if close else ""))
    return dataclasses.replace(base, **overrides)


def check_fields(cfg: Any) -> None:
    """Check each field of a config instance against its type and :func:`param` constraints.

    Call it from ``__post_init__`` so that building the dataclass directly in code is checked
    like loading it from YAML. Nested config sections are left to their own ``__post_init__``.

    Raises:
        TypeError: a value of the wrong type, e.g. ``SceneConfig.image_size: expected int, got 320.0``.
        ValueError: a value out of bounds or not among the choices, naming the field.
    """
    for name, f in _schema(type(cfg)).items():
        if _section_type(f.type) is not None:
            continue
        value = getattr(cfg, name)
        where = f"{type(cfg).__name__}.{name}"
        try:
            _coerce(value, f.type, cli=False)
        except _Mismatch as exc:
            raise TypeError(f"{where}{exc.suffix}: expected {exc.expected}, got {_show(exc.value)}") from None
        try:
            _check_constraints(value, f.spec)
        except _Mismatch as exc:
            raise ValueError(f"{where}{exc.suffix}: expected {exc.expected}, got {_show(exc.value)}{exc.hint}") from None


# ----------------------------------------------------------------------------- collecting values


@dataclass(frozen=True)
class _Given:
    """One value a user gave, and where it came from (``file:line``, ``overrides``, a flag)."""

    value: Any
    where: str
    cli: bool  # strings are parsed to the field type (command line, overrides)


_Tree = dict  # key -> _Tree (a nested section) or _Given


def config_keys(cls: type, *, sections: bool = False) -> list[str]:
    """The dotted keys of a config class, leaves only unless ``sections`` (``optim``) too."""
    keys = []
    for name, f in _schema(cls).items():
        section = _section_type(f.type)
        if section is None or sections:
            keys.append(name)
        if section is not None:
            keys.extend(f"{name}.{k}" for k in config_keys(section, sections=sections))
    return keys


def _closest_keys(key: str, valid: list[str]) -> list[str]:
    """Up to three keys about as close to ``key`` as the best one; else same last part (``lr``)."""
    scored = sorted(((difflib.SequenceMatcher(None, key, k).ratio(), k) for k in valid), reverse=True)
    best = scored[0][0] if scored else 0.0
    close = [k for score, k in scored if score >= max(0.6, best - 0.1)][:3]
    if not close:  # right name at the wrong level: `lr` for `optim.lr`
        leaf = key.rsplit(".", 1)[-1]
        same = [k for k in valid if difflib.SequenceMatcher(None, leaf, k.rsplit(".", 1)[-1]).ratio() >= 0.8]
        close = same[:3]
    return close


def _unknown_key(root: type, key: str, where: str) -> ValueError:
    """An unknown-key error that suggests the closest valid dotted keys."""
    valid = config_keys(root, sections=True)
    close = _closest_keys(key, valid)
    if close:
        return ValueError(f"unknown key '{key}' in {where}; did you mean {' or '.join(map(repr, close))}?")
    return ValueError(f"unknown key '{key}' in {where}; valid keys are: {', '.join(valid)}")


def _read_yaml(root: type, path: Path) -> _Tree:
    """The keys of a YAML preset, checked against ``root`` and tagged with their line numbers."""
    require_file(path, "config file")
    loader = _Loader(path.read_text(encoding="utf-8"))
    try:
        try:
            node = loader.get_single_node()
        except yaml.YAMLError as exc:
            raise ValueError(f"cannot parse YAML in {path}: {exc}") from exc
        if node is None or (isinstance(node, yaml.ScalarNode) and node.tag == _NULL_TAG):
            return {}  # an empty file (or only comments) keeps every default
        if not isinstance(node, yaml.MappingNode):
            kind = "list" if isinstance(node, yaml.SequenceNode) else f"scalar {node.value!r}"
            raise ValueError(f"the top level of {path} must be a mapping of config keys "
                             f"(key: value lines), got a {kind}")
        return _read_mapping(loader, node, root, root, "", path)
    finally:
        loader.dispose()


def _check_duplicates(node: yaml.MappingNode, prefix: str, path: Path) -> None:
    first_line: dict[str, int] = {}
    for key_node, _ in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.tag != _MERGE_TAG:
            line = key_node.start_mark.line + 1
            if key_node.value in first_line:
                raise ValueError(f"duplicate key '{prefix}{key_node.value}' in {path}:{line} "
                                 f"(first given on line {first_line[key_node.value]})")
            first_line[key_node.value] = line


def _read_mapping(loader: _Loader, node: yaml.MappingNode, cls: type, root: type, prefix: str,
                  path: Path) -> _Tree:
    _check_duplicates(node, prefix, path)
    loader.flatten_mapping(node)  # YAML merge keys (<<: *base); later keys win
    fields, tree = _schema(cls), {}
    for key_node, value_node in node.value:
        where = f"{path}:{key_node.start_mark.line + 1}"
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str):
            raise ValueError(f"config keys must be strings, got {_show(key)} in {where}")
        if key not in fields:
            raise _unknown_key(root, prefix + key, where)
        section = _section_type(fields[key].type)
        if section is not None and isinstance(value_node, yaml.MappingNode):
            tree[key] = _read_mapping(loader, value_node, section, root, f"{prefix}{key}.", path)
        else:
            tree[key] = _Given(loader.construct_object(value_node, deep=True), where, cli=False)
    return tree


def _flatten(overrides: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in overrides.items():
        if not isinstance(key, str):
            raise TypeError(f"override keys must be dotted strings like 'optim.lr', got {key!r}")
        if isinstance(value, Mapping):
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield prefix + key, value


def _apply_override(tree: _Tree, root: type, key: str, value: Any, where: str) -> None:
    """Put one dotted override into the tree, replacing what the YAML file gave."""
    cls, node, parts = root, tree, key.split(".")
    for i, name in enumerate(parts):
        fields = _schema(cls)
        if name not in fields:
            raise _unknown_key(root, key, where)
        if i == len(parts) - 1:
            node[name] = _Given(value, where, cli=True)
            return
        section = _section_type(fields[name].type)
        if section is None:
            raise ValueError(f"unknown key '{key}' in {where}: '{'.'.join(parts[:i + 1])}' is a "
                             f"{_describe(fields[name].type)} value, not a section with keys")
        if not isinstance(node.get(name), dict):
            node[name] = {}
        cls, node = section, node[name]


# ----------------------------------------------------------------------------- building the instance


def _leaf(given: _Given, f: _Field, key: str) -> Any:
    try:
        value = _coerce(given.value, f.type, given.cli)
        _check_constraints(value, f.spec)
    except _Mismatch as exc:
        raise ValueError(f"invalid value for '{key}{exc.suffix}' in {given.where}: expected "
                         f"{exc.expected}, got {_show(exc.value)}{exc.hint}") from None
    return value


def _build(cls: type[T], tree: _Tree, base: Any, prefix: str, origin: str) -> T:
    """An instance of ``cls`` from the tree; keys the tree lacks come from ``base`` or defaults."""
    values = {}
    for name, f in _schema(cls).items():
        key, node = prefix + name, tree.get(name)
        current = f.default if base is None else getattr(base, name)
        section = _section_type(f.type)
        optional = _NONE in (_union_args(f.type) or ())
        if section is not None and isinstance(node, _Given) and node.value is None and not optional:
            node = {}  # `optim:` with nothing under it keeps the section's defaults
        if node is None:
            if current is MISSING:
                raise ValueError(f"missing required key '{key}' in {origin}: "
                                 f"{cls.__name__}.{name} has no default")
            values[name] = current
        elif isinstance(node, dict):
            assert section is not None, f"tree holds a section for the non-section key {key}"
            nested_base = current if isinstance(current, section) else None
            values[name] = _build(section, node, nested_base, key + ".", origin)
        else:
            values[name] = _leaf(node, f, key)
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:  # the class's own __post_init__ checks
        raise ValueError(f"invalid {cls.__name__} config{' ' + prefix.rstrip('.') if prefix else ''} "
                         f"from {origin}: {exc}") from exc


def _load(cls: type[T], path: str | Path | None, overrides: Mapping[str, Any] | None,
          where: Callable[[str], str], base: T | None = None) -> T:
    _schema(cls)  # a TypeError for a bad config class comes before any file error
    tree = _read_yaml(cls, Path(path)) if path is not None else {}
    for key, value in _flatten(overrides or {}):
        _apply_override(tree, cls, key, value, where(key))
    origin = str(path) if path is not None else "the defaults"
    return _build(cls, tree, base, "", origin + (" and overrides" if overrides else ""))


def load_config(
    cls: type[T], path: str | Path | None = None, overrides: Mapping[str, object] | None = None,
    base: T | None = None,
) -> T:
    """Read a frozen config dataclass ``cls`` from a YAML preset, then apply ``overrides``.

    Args:
        cls: a ``@dataclass(frozen=True)``; annotations may be strings (``from __future__ import
            annotations``).
        path: YAML file whose top level is a mapping; nested mappings fill nested dataclass
            fields. ``None`` or an empty file keeps every default.
        overrides: dotted keys (``{"optim.lr": 0.01}``) or nested mappings; values may be
            strings as a command line gives them, parsed to the field type.
        base: an instance (e.g. a named preset) whose values replace the class defaults; the
            YAML and then ``overrides`` apply on top of it.

    Raises:
        ValueError: unknown key (with the closest valid keys), wrong type, out of range, not
            among the choices, a YAML top level that is not a mapping; the message names the
            file and line (or the override), the dotted key, what was expected and what came.
        TypeError: ``cls`` is not a frozen dataclass or has a field type this module cannot read.
        FileNotFoundError: ``path`` does not exist.
    """
    return _load(cls, path, overrides, lambda key: "overrides", base)


# ----------------------------------------------------------------------------- writing


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return config_to_dict(value)
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A config instance as plain YAML/JSON data: nested dicts, paths as str, tuples as lists."""
    if not dataclasses.is_dataclass(cfg) or isinstance(cfg, type):
        raise TypeError(f"expected a config dataclass instance, got {type(cfg).__name__}")
    return {f.name: _plain(getattr(cfg, f.name)) for f in dataclasses.fields(cfg) if f.init}


def _dump(data: dict[str, Any], allow_unicode: bool) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=allow_unicode,
                     default_flow_style=None)


def save_config(cfg: Any, path: str | Path) -> Path:
    """Write ``cfg`` as a YAML preset that :func:`load_config` reads back equal; returns the path.

    The file is written atomically (temporary file + rename); parent folders are created.
    """
    path, data = Path(path), config_to_dict(cfg)
    text = _dump(data, allow_unicode=True)
    if yaml.load(text, Loader=_Loader) != data:  # PyYAML folds some characters (NEL) when unescaped
        text = _dump(data, allow_unicode=False)
    return write_text_atomic(path, text)


# ----------------------------------------------------------------------------- command line


def _leaves(cls: type, base: Any = None, prefix: str = "") -> Iterator[tuple[str, _Field, Any]]:
    """(dotted key, field, default) for every leaf field, nested sections flattened."""
    for name, f in _schema(cls).items():
        current = f.default if base is None else getattr(base, name)
        section = _section_type(f.type)
        if section is None:
            yield prefix + name, f, current
        else:
            yield from _leaves(section, current if isinstance(current, section) else None, f"{prefix}{name}.")


def _metavar(tp: Any) -> str:
    arms = [a for a in _union_args(tp) or (tp,) if a is not _NONE]
    tp = arms[0] if len(arms) == 1 else tp
    if tp is bool:
        return "{true,false}"
    if typing.get_origin(tp) is Literal:
        return "{" + ",".join(map(str, typing.get_args(tp))) + "}"
    if typing.get_origin(tp) is tuple:
        items = _tuple_items(tp, 1)
        return _metavar(items[0]) if len(set(items)) == 1 else "VALUE"
    if isinstance(tp, type):
        return "PATH" if issubclass(tp, PurePath) else tp.__name__.upper()
    return "VALUE"


def _flag_text(value: Any) -> str:
    """A default as it would be typed on the command line: ``320 320``, ``true``, ``none``."""
    if isinstance(value, tuple):
        return " ".join(map(_flag_text, value)) or "(empty)"
    if value is None or isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _flag_options(f: _Field, default: Any) -> dict[str, Any]:
    """argparse keywords for one leaf: nargs for tuples and bools, help with type and default."""
    arms = [a for a in _union_args(f.type) or (f.type,) if a is not _NONE]
    inner = arms[0] if len(arms) == 1 else f.type
    options: dict[str, Any] = {"default": argparse.SUPPRESS, "metavar": _metavar(f.type)}
    if inner is bool:
        options.update(nargs="?", const="true")  # `--amp` alone means true
    elif typing.get_origin(inner) is tuple:
        items = _tuple_items(inner, None)
        options["nargs"] = "+" if inner is not f.type else "*" if items is None else len(items)
    shown = "required" if default is MISSING else f"default: {_flag_text(default)}"
    if default is None and "(default:" in f.spec.help:  # the help says what none means
        shown = ""
    detail = "; ".join(p for p in (_describe(f.type), f.spec.describe(), shown) if p)
    options["help"] = (f"{f.spec.help} ({detail})" if f.spec.help else f"({detail})").replace("%", "%%")
    return options


def add_config_arguments(parser: argparse.ArgumentParser, cls: type, prefix: str = "") -> None:
    """Add ``--{prefix}config PATH`` and one ``--{prefix}dotted.key`` flag per leaf field of ``cls``
    (underscores written as hyphens: ``--image-size``).

    Flags default to ``argparse.SUPPRESS``, so the namespace holds only what the user typed and
    :func:`config_from_args` lets those flags override the YAML preset. Tuples take
    space-separated values (``--size 320 320``), bools ``--amp true|false`` (``--amp`` alone is
    true), optional fields ``none``. ``prefix`` (e.g. ``"train."``) keeps several configs apart.
    """
    group = parser.add_argument_group(f"{prefix}config ({cls.__name__})")
    group.add_argument(f"--{prefix}config", dest=f"{prefix}config", metavar="PATH", default=None,
                       help="YAML preset; flags given on the command line override its keys")
    for key, f, default in _leaves(cls):
        group.add_argument(flag_name(prefix + key), dest=prefix + key, **_flag_options(f, default))


def flag_name(key: str) -> str:
    """The command-line flag of config key ``key``: ``image_size`` -> ``--image-size`` (the
    parser also takes ``--image_size``, see :class:`classify.base.cli.SuggestingParser`)."""
    return "--" + key.replace("_", "-")


def config_from_args(cls: type[T], args: argparse.Namespace, prefix: str = "", base: T | None = None) -> T:
    """The config from ``--{prefix}config`` (if given) overridden by the flags the user gave.

    ``base`` (e.g. a named preset) replaces the class defaults under the YAML and the flags.

    Raises ``ValueError`` naming the flag (``command-line flag --optim.lr``); a CLI turns it
    into a usage error with ``parser.error(str(exc))``.
    """
    given = vars(args)
    overrides = {key: given[prefix + key] for key in config_keys(cls) if prefix + key in given}
    return _load(cls, given.get(prefix + "config"), overrides,
                 lambda key: f"command-line flag {flag_name(prefix + key)}", base)
