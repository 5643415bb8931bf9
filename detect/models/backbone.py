"""The contract adapter: a ``classify`` :class:`~classify.models.features.Backbone` as a detection backbone.

torchvision's detection heads want ``backbone(x) -> OrderedDict[str, Tensor]`` with the same
number of channels, ``backbone.out_channels``, on every map.  The adapter reads the zoo model's
``feature_info`` (never channels or strides typed by hand) and adds a neck:

* :class:`BackboneWithFPN` -- ``torchvision.ops.FeaturePyramidNetwork`` over the levels chosen by
  :func:`select_fpn_levels` (default: the deepest map of each distinct stride >= 4, the last 4 of
  them), plus ``LastLevelMaxPool`` (a ``"pool"`` map at twice the last stride);
* :class:`BackboneC4` -- one map, the deepest of stride 16 (:func:`select_c4_level`), projected to
  ``out_channels`` by a 1x1 convolution (what torchvision's non-FPN MobileNet extractor does).

Both expose ``feature_info`` for their *outputs* (``FeatureInfo(name, out_channels, stride)``;
names are the zoo's feature names, e.g. ``"layer3"``, plus ``"pool"``), which the anchor
generator and the RoI pooler are built from.

The zoo model is kept at ``self.body`` and pruned for detection (:func:`prune_unused`): every
submodule that ``features()`` never calls (classification heads) or calls only after the deepest
used level was produced (e.g. ResNet's ``layer4`` in the C4 variant) is replaced by
``nn.Identity``, checked on a dry run to leave the used maps unchanged.  The pruned ``body`` is
therefore for ``features()`` only, and its unused taps hold meaningless tensors.

:func:`build_backbone` makes one from a registry name, optionally loading backbone weights (a
classifier checkpoint of this project, or a torchvision / timm state dict, via
:func:`classify.models.weights.load_weights`), freezing early stages (``trainable_layers``) and turning
BatchNorm into ``FrozenBatchNorm2d`` (``frozen_bn``), as torchvision does for pretrained backbones.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool
from torchvision.ops.misc import FrozenBatchNorm2d

from classify.base.checkpoint import FORMAT as CHECKPOINT_FORMAT
from classify.base.checkpoint import read_torch_file
from classify.models.features import Backbone, FeatureInfo
from classify.models.registry import get_model, get_model_entry, list_models
from classify.models.weights import load_weights

__all__ = [
    "BackboneC4", "BackboneTaps", "BackboneWithFPN", "DetectionBackbone", "FeatureTrace", "KeepDtypeFrozenBatchNorm2d",
    "build_backbone", "build_taps", "check_usable", "freeze_batchnorm", "freeze_stages", "pick_levels", "prune_unused",
    "select_c4_level", "select_fpn_levels", "select_stride_levels", "stage_of_modules", "trace_features",
    "usable_backbones",
]

FPN_MIN_STRIDE = 4
FPN_MAX_LEVELS = 4
C4_STRIDE = 16
MIN_TOP_STRIDE = 16  # a usable backbone reaches at least this stride
DEFAULT_TRACE_SIZE = 64


# -- level selection ----------------------------------------------------------------------------
def select_fpn_levels(feature_info: Sequence[FeatureInfo], min_stride: int = FPN_MIN_STRIDE,
                      max_levels: int = FPN_MAX_LEVELS, where: str = "backbone") -> list[FeatureInfo]:
    """The FPN inputs: the deepest map of each distinct stride ``>= min_stride``, last ``max_levels``.

    ResNet (stem/2, layer1/4 .. layer4/32) -> layer1..layer4, as torchvision's ResNet-FPN.
    Raises ``ValueError`` unless at least 2 levels remain and the deepest reaches stride 16.
    """
    by_stride: dict[int, FeatureInfo] = {}
    for f in feature_info:
        if f.stride >= min_stride:
            by_stride[f.stride] = f  # later (deeper) maps of the same stride win
    levels = list(by_stride.values())[-max_levels:]
    if len(levels) < 2 or levels[-1].stride < MIN_TOP_STRIDE:
        raise ValueError(
            f"{where}: an FPN needs >= 2 feature maps of distinct strides >= {min_stride} reaching "
            f"stride >= {MIN_TOP_STRIDE}; feature_info has {_describe(feature_info)}")
    return levels


def select_stride_levels(feature_info: Sequence[FeatureInfo], strides: Sequence[int],
                         where: str = "backbone") -> list[FeatureInfo]:
    """The deepest map of each stride in ``strides``, in that order (YOLO heads read these).

    ResNet-18 with ``strides=(8, 16, 32)`` -> layer2, layer3, layer4.  Raises ``ValueError``
    naming the strides the backbone has when one is missing.
    """
    by_stride: dict[int, FeatureInfo] = {}
    for f in feature_info:
        by_stride[f.stride] = f
    missing = [s for s in strides if s not in by_stride]
    if missing:
        raise ValueError(f"{where}: needs feature maps of stride {list(strides)}; stride {missing} missing, "
                         f"feature_info has {_describe(feature_info)}")
    return [by_stride[s] for s in strides]


def select_c4_level(feature_info: Sequence[FeatureInfo], stride: int = C4_STRIDE,
                    where: str = "backbone") -> FeatureInfo:
    """The single map of the C4-style detector: the deepest one of ``stride`` (16) pixels."""
    matches = [f for f in feature_info if f.stride == stride]
    if not matches:
        raise ValueError(f"{where}: the single-level (fpn=False) detector needs a stride-{stride} "
                         f"feature map; feature_info has {_describe(feature_info)}")
    return matches[-1]


def pick_levels(feature_info: Sequence[FeatureInfo], names: Sequence[str],
                where: str = "backbone") -> list[FeatureInfo]:
    """The entries of ``feature_info`` named ``names`` (in the order given; strides must not
    decrease)."""
    info = {f.name: f for f in feature_info}
    unknown = [n for n in names if n not in info]
    if unknown or not names:
        raise ValueError(f"{where}: levels {list(names)} must be non-empty names from "
                         f"feature_info {list(info)}; unknown: {unknown}")
    levels = [info[n] for n in names]
    strides = [f.stride for f in levels]
    if any(b < a for a, b in zip(strides, strides[1:])):
        raise ValueError(f"{where}: levels must be ordered by non-decreasing stride, got "
                         f"{list(zip(names, strides))}")
    return levels


def _describe(feature_info: Sequence[FeatureInfo]) -> str:
    return ", ".join(f"{f.name}/{f.stride}" for f in feature_info) or "no maps"


# -- dry-run tracing, pruning and stage freezing -------------------------------------------------
@dataclass(frozen=True)
class FeatureTrace:
    """One dry run of ``body.features``: when each submodule was first called and when each
    feature map was produced, as indices into the sequence of module call events.

    ``produced[name] == -1`` means no module returned that exact tensor (it came from a
    functional op), so stages cannot be located for it.
    """

    first_call: dict[str, int]
    produced: dict[str, int]
    outputs: OrderedDict[str, Tensor]


def trace_features(body: Backbone, input_size: int = DEFAULT_TRACE_SIZE) -> FeatureTrace:
    """Run ``body.features`` once (eval mode, no grad) on a ``input_size`` square, recording calls."""
    clock = itertools.count()
    first_call: dict[str, int] = {}
    returned: list[tuple[int, Tensor]] = []

    def pre(name: str):
        def hook(module: nn.Module, args: object) -> None:
            if name not in first_call:
                first_call[name] = next(clock)
        return hook

    def post(module: nn.Module, args: object, output: object) -> None:
        if isinstance(output, Tensor):
            returned.append((next(clock), output))

    handles = []
    for name, module in body.named_modules():
        if name:
            handles += [module.register_forward_pre_hook(pre(name)),
                        module.register_forward_hook(post)]
    try:
        outputs = _dry_run(body, input_size)
    finally:
        for h in handles:
            h.remove()
    produced = {n: max((i for i, out in returned if out is t), default=-1)
                for n, t in outputs.items()}
    return FeatureTrace(_with_ancestors(first_call), produced, outputs)


def _with_ancestors(first_call: dict[str, int]) -> dict[str, int]:
    """Containers that are never called themselves (their children are, one by one) count as
    first called when their first descendant is."""
    out = dict(first_call)
    for name, index in first_call.items():
        parts = name.split(".")
        for k in range(1, len(parts)):
            parent = ".".join(parts[:k])
            out[parent] = min(out.get(parent, index), index)
    return out


def _dry_run(body: Backbone, input_size: int) -> OrderedDict[str, Tensor]:
    ref = next(itertools.chain(body.parameters(), body.buffers()))
    x = torch.rand(1, body.in_chans, input_size, input_size, generator=torch.Generator().manual_seed(0))
    was_training = body.training
    body.eval()
    try:
        with torch.no_grad():
            return body.features(x.to(device=ref.device, dtype=ref.dtype))
    finally:
        body.train(was_training)


def prune_unused(body: Backbone, levels: Sequence[str], trace: FeatureTrace,
                 input_size: int = DEFAULT_TRACE_SIZE) -> list[str]:
    """Replace by ``nn.Identity`` the submodules not needed for the maps ``levels``.

    First tries every module never called or first called after the last of ``levels`` was
    produced; if a dry run then changes a used map (or fails), only never-called modules; if that
    fails too, nothing.  Returns the replaced module paths.
    """
    ends = [trace.produced[n] for n in levels]
    last = -1 if min(ends) < 0 else max(ends)  # unknown producer: keep everything called
    never = _module_names(body) - trace.first_call.keys()
    after = {n for n, i in trace.first_call.items() if i > last} if last >= 0 else set()
    for candidates in (never | after, never):
        replaced = _replace_maximal(body, candidates)
        if _same_outputs(body, levels, trace, input_size):
            return sorted(replaced)
        for path, module in replaced.items():
            body.set_submodule(path, module)
    return []


def _module_names(body: nn.Module) -> set[str]:
    return {n for n, _ in body.named_modules() if n}


def _replace_maximal(body: nn.Module, names: set[str]) -> dict[str, nn.Module]:
    """Swap the outermost modules among ``names`` for ``nn.Identity``; returns the originals."""
    replaced = {}
    for name in sorted(names, key=lambda n: n.count(".")):
        parent = name.rpartition(".")[0]
        if any(parent == r or parent.startswith(r + ".") for r in replaced):
            continue
        replaced[name] = body.get_submodule(name)
        body.set_submodule(name, nn.Identity())
    return replaced


def _same_outputs(body: Backbone, levels: Sequence[str], trace: FeatureTrace,
                  input_size: int) -> bool:
    try:
        outputs = _dry_run(body, input_size)
        return all(torch.allclose(outputs[n], trace.outputs[n], rtol=1e-5, atol=1e-6)
                   and outputs[n].shape == trace.outputs[n].shape for n in levels)
    except Exception:  # noqa: BLE001 - any failure means the pruning is not safe
        return False


def stage_of_modules(body: Backbone, trace: FeatureTrace, num_stages: int) -> dict[str, int]:
    """Stage index of every called module: ``k`` if first called while map ``k`` of
    ``feature_info`` was being computed (after map ``k-1`` was produced)."""
    ends = [trace.produced[f.name] for f in body.feature_info[:num_stages]]
    if min(ends) < 0:
        missing = [f.name for f, e in zip(body.feature_info, ends) if e < 0]
        raise ValueError(f"{type(body).__name__}: cannot locate the stages of maps {missing} "
                         f"(not the output of any module), so trainable_layers is unsupported")
    stages = {}
    for name, start in trace.first_call.items():
        stages[name] = next((k for k, end in enumerate(ends) if end >= start), num_stages)
    return stages


def freeze_stages(body: Backbone, trace: FeatureTrace, num_stages: int,
                  trainable_layers: int) -> list[str]:
    """Set ``requires_grad=False`` on the parameters of stages ``0 .. num_stages-trainable-1``.

    A *stage* is the part of the network between two consecutive ``feature_info`` taps (stage
    0 ends at the first tap), counted up to the deepest used level, so for a ResNet with
    ``trainable_layers=3``: ``layer2..layer4`` train, ``stem`` and ``layer1`` are frozen
    (torchvision's rule).  Returns the frozen parameter names.
    """
    if not 0 <= trainable_layers <= num_stages:
        raise ValueError(f"trainable_layers must be in [0, {num_stages}] for "
                         f"{type(body).__name__} ({num_stages} stages up to the deepest used "
                         f"level), got {trainable_layers}")
    if trainable_layers == num_stages:
        return []
    stages = stage_of_modules(body, trace, num_stages)
    frozen = []
    for name, module in body.named_modules():
        if name and stages.get(name, num_stages) < num_stages - trainable_layers:
            for pname, p in module.named_parameters(recurse=False):
                p.requires_grad_(False)
                frozen.append(f"{name}.{pname}")
    return frozen


def freeze_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every ``nn.BatchNorm2d`` under ``module`` by an equivalent frozen one
    (:class:`KeepDtypeFrozenBatchNorm2d`, a torchvision ``FrozenBatchNorm2d``).

    The frozen layer normalises with the stored running statistics in train and eval mode alike
    and has no trainable parameters (torchvision's choice for pretrained detection backbones).
    Returns ``module`` (changed in place; a bare BatchNorm2d is returned converted).
    """
    if isinstance(module, nn.BatchNorm2d):
        return _frozen_copy(module)
    for name, child in module.named_children():
        new = freeze_batchnorm(child)
        if new is not child:
            setattr(module, name, new)
    return module


class KeepDtypeFrozenBatchNorm2d(FrozenBatchNorm2d):
    """torchvision's ``FrozenBatchNorm2d`` that returns its input's dtype.

    torchvision's layer multiplies by its float32 buffers, so under bfloat16 autocast every
    frozen BN turns the convolution's bfloat16 output back into float32 (and the next
    convolution casts it down again).  When ``x``'s dtype differs from the buffers', this one
    applies ``x * scale + shift`` in one pass in ``x``'s dtype (otherwise torchvision's own
    forward): 5% of a CPU bfloat16 training step of the recipe's ResNet-18-FPN.
    ``x``: ``(N, C, H, W)``.
    """

    def forward(self, x: Tensor) -> Tensor:
        if x.dtype == self.weight.dtype:
            return super().forward(x)  # torchvision's arithmetic, bit for bit (checkpoint parity)
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        shift = self.bias - self.running_mean * scale
        return torch.addcmul(shift.to(x.dtype).reshape(1, -1, 1, 1), x, scale.to(x.dtype).reshape(1, -1, 1, 1))


def _frozen_copy(bn: nn.BatchNorm2d) -> FrozenBatchNorm2d:
    frozen = KeepDtypeFrozenBatchNorm2d(bn.num_features, eps=bn.eps)
    ref = bn.running_mean if bn.running_mean is not None else frozen.weight
    frozen = frozen.to(device=ref.device, dtype=ref.dtype)
    with torch.no_grad():
        if bn.affine:
            frozen.weight.copy_(bn.weight)
            frozen.bias.copy_(bn.bias)
        if bn.track_running_stats:
            frozen.running_mean.copy_(bn.running_mean)
            frozen.running_var.copy_(bn.running_var)
    return frozen


# -- the adapters -------------------------------------------------------------------------------
class DetectionBackbone(nn.Module):
    """Base of the adapters: ``forward(x: Tensor[N, 3, H, W]) -> OrderedDict[name, Tensor[N,
    out_channels, H/s, W/s]]`` (``s`` the output's stride in ``feature_info``).

    Attributes: ``body`` (the pruned zoo model), ``levels`` (the ``FeatureInfo`` of the body maps
    read), ``feature_info`` (of the outputs), ``out_channels``.
    """

    feature_info: list[FeatureInfo]

    def __init__(self, body: Backbone, levels: Sequence[FeatureInfo], out_channels: int) -> None:
        super().__init__()
        self.body = body
        self.levels = list(levels)
        self.out_channels = out_channels

    def taps(self, x: Tensor) -> OrderedDict[str, Tensor]:
        """The body maps named in ``levels``, in order."""
        feats = self.body.features(x)
        return OrderedDict((f.name, feats[f.name]) for f in self.levels)


class BackboneWithFPN(DetectionBackbone):
    """Body maps ``levels`` -> ``FeaturePyramidNetwork`` (+ ``LastLevelMaxPool`` "pool" map).

    ``norm_layer`` (e.g. ``nn.BatchNorm2d``) goes into the FPN's convolutions, as in
    torchvision's ``fasterrcnn_resnet50_fpn_v2``.
    """

    def __init__(self, body: Backbone, levels: Sequence[FeatureInfo], out_channels: int = 256,
                 norm_layer: type[nn.Module] | None = None, extra_pool: bool = True) -> None:
        super().__init__(body, levels, out_channels)
        self.fpn = FeaturePyramidNetwork(
            [f.channels for f in self.levels], out_channels,
            extra_blocks=LastLevelMaxPool() if extra_pool else None, norm_layer=norm_layer)
        self.feature_info = [FeatureInfo(f.name, out_channels, f.stride) for f in self.levels]
        if extra_pool:
            self.feature_info.append(FeatureInfo("pool", out_channels, 2 * self.levels[-1].stride))

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        """``x: Tensor[N, 3, H, W]`` -> one ``Tensor[N, out_channels, H/s, W/s]`` per level."""
        return self.fpn(self.taps(x))


class BackboneC4(DetectionBackbone):
    """One body map (stride 16) -> 1x1 convolution to ``out_channels``."""

    def __init__(self, body: Backbone, level: FeatureInfo, out_channels: int = 256) -> None:
        super().__init__(body, [level], out_channels)
        self.proj = nn.Conv2d(level.channels, out_channels, kernel_size=1)
        self.feature_info = [FeatureInfo(level.name, out_channels, level.stride)]

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        """``x: Tensor[N, 3, H, W]`` -> ``{level: Tensor[N, out_channels, H/16, W/16]}``."""
        name, feat = next(iter(self.taps(x).items()))
        return OrderedDict([(name, self.proj(feat))])


class BackboneTaps(DetectionBackbone):
    """The body maps of ``levels`` themselves, no neck (YOLO necks are built on top).

    ``forward(x) -> OrderedDict[name, Tensor[N, C_l, H/s_l, W/s_l]]``; ``feature_info`` is
    ``levels`` (each map keeps its own channels); ``out_channels`` is the deepest map's.
    """

    def __init__(self, body: Backbone, levels: Sequence[FeatureInfo]) -> None:
        super().__init__(body, levels, levels[-1].channels)
        self.feature_info = list(self.levels)

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        """``x: Tensor[N, 3, H, W]`` -> the body maps of ``levels``, in order."""
        return self.taps(x)


# -- building -----------------------------------------------------------------------------------
def build_backbone(
    backbone: str | Backbone,
    *,
    fpn: bool = True,
    levels: Sequence[str] | None = None,
    out_channels: int = 256,
    fpn_norm: type[nn.Module] | None = None,
    weights: str | Path | None = None,
    trainable_layers: int | None = None,
    frozen_bn: bool = False,
    input_size: int | None = None,
) -> DetectionBackbone:
    """A detection backbone from a zoo name (or a built zoo model).

    Args:
        backbone: a name from :func:`usable_backbones`, or a :class:`Backbone` instance (used
            and changed in place: weights loaded, stages frozen, unused modules pruned).
        fpn: FPN over several levels (True) or the single stride-16 map (False).
        levels: feature names to read (default: :func:`select_fpn_levels` /
            :func:`select_c4_level`); for ``fpn=False`` exactly one.
        weights: backbone weights file: a checkpoint of this project (its ``config["model"]``
            must name the same backbone), or a plain torchvision / timm / zoo state dict.
        trainable_layers: stages left trainable, counted from the deepest used one
            (:func:`freeze_stages`); ``None`` trains all.
        frozen_bn: turn the body's BatchNorm2d layers into ``FrozenBatchNorm2d``.
        input_size: square size of the dry run (default: the model's ``min_input_size``).
    """
    name = backbone if isinstance(backbone, str) else type(backbone).__name__
    body = _body(backbone, weights)
    chosen = _choose_levels(body.feature_info, fpn, levels, name)
    _prepare_body(body, chosen, trainable_layers, frozen_bn, input_size or _trace_size(backbone))
    if fpn:
        return BackboneWithFPN(body, chosen, out_channels, norm_layer=fpn_norm)
    return BackboneC4(body, chosen[0], out_channels)


def build_taps(
    backbone: str | Backbone,
    strides: Sequence[int] = (8, 16, 32),
    *,
    weights: str | Path | None = None,
    trainable_layers: int | None = None,
    frozen_bn: bool = False,
    input_size: int | None = None,
) -> BackboneTaps:
    """The zoo model's deepest map of each of ``strides`` (:func:`select_stride_levels`), no neck.

    ``weights``, ``trainable_layers``, ``frozen_bn`` and ``input_size`` as in :func:`build_backbone`;
    modules used only after the deepest tapped map (classification heads) are pruned.
    """
    name = backbone if isinstance(backbone, str) else type(backbone).__name__
    body = _body(backbone, weights)
    chosen = select_stride_levels(body.feature_info, strides, f"backbone {name!r}")
    _prepare_body(body, chosen, trainable_layers, frozen_bn, input_size or _trace_size(backbone))
    return BackboneTaps(body, chosen)


def _body(backbone: str | Backbone, weights: str | Path | None) -> Backbone:
    """The zoo model named ``backbone`` (or ``backbone`` itself) with ``weights`` loaded."""
    if isinstance(backbone, str):
        return _zoo_model(backbone, weights)
    if weights is not None:
        load_weights(backbone, _read_backbone_state(Path(weights), None))
    return backbone


def _prepare_body(body: Backbone, chosen: Sequence[FeatureInfo], trainable_layers: int | None,
                  frozen_bn: bool, input_size: int) -> None:
    """Freeze early stages, prune what the ``chosen`` maps never need, freeze BatchNorm: in place."""
    trace = trace_features(body, input_size)
    deepest = max(i for i, f in enumerate(body.feature_info) if f in chosen)
    if trainable_layers is not None:
        freeze_stages(body, trace, deepest + 1, trainable_layers)
    prune_unused(body, [f.name for f in chosen], trace, input_size)
    if frozen_bn:
        freeze_batchnorm(body)


def _choose_levels(info: Sequence[FeatureInfo], fpn: bool, levels: Sequence[str] | None,
                   name: str) -> list[FeatureInfo]:
    where = f"backbone {name!r}"
    if levels is not None:
        chosen = pick_levels(info, levels, where)
        if not fpn and len(chosen) != 1:
            raise ValueError(f"{where}: fpn=False reads exactly one level, got levels={list(levels)}")
        return chosen
    if fpn:
        return select_fpn_levels(info, where=where)
    return [select_c4_level(info, where=where)]


def _trace_size(backbone: str | Backbone) -> int:
    if isinstance(backbone, str):
        return max(get_model_entry(backbone).min_input_size, DEFAULT_TRACE_SIZE)
    return DEFAULT_TRACE_SIZE


def _zoo_model(name: str, weights: str | Path | None) -> Backbone:
    """The zoo model ``name`` without classifier (3 input channels), with ``weights`` loaded."""
    check_usable(name)
    body = get_model(name, num_classes=0, in_chans=3)
    if weights is not None:
        load_weights(body, _read_backbone_state(Path(weights), name))
    return body


def _read_backbone_state(path: Path, name: str | None) -> dict:
    obj = read_torch_file(path, "backbone weights file")
    if isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT:
        saved = obj.get("config", {}).get("model")
        if name is not None and saved is not None and saved != name:
            raise ValueError(f"{path}: a checkpoint of classifier {saved!r} cannot initialise "
                             f"backbone {name!r}; pass backbone={saved!r} or another file")
    return obj


def check_usable(name: str) -> None:
    """Raise ``ValueError`` unless zoo model ``name`` can be a detection backbone."""
    entry = get_model_entry(name)  # unknown names raise with close matches
    if entry.in_chans != 3 or not _reaches_stride(name):
        raise ValueError(
            f"backbone {name!r} cannot serve a detector: it needs 3-channel input and a feature "
            f"map of stride >= {MIN_TOP_STRIDE}; usable backbones: {', '.join(usable_backbones())}")


def usable_backbones() -> list[str]:
    """Zoo models with RGB input whose ``feature_info`` reaches stride 16 (FPN and C4 both)."""
    return [n for n in list_models() if get_model_entry(n).in_chans == 3
            and _reaches_stride(n)]


def _reaches_stride(name: str) -> bool:
    with torch.device("meta"):
        info = get_model(name, num_classes=0).feature_info
    return max(f.stride for f in info) >= MIN_TOP_STRIDE
