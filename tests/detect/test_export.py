"""detect.export: every registered detector family as ONNX and TorchScript, run back through the
Detector contract and compared with eager PyTorch on random images; metadata, bad files, refused
models and ``detect export`` end to end.

Random-initialised detectors are close to input-independent (their activations fade through the
untrained backbone, so every box gets the same few scores and the order of ties is arbitrary):
:func:`lively` scales the R-CNN backbone's output to unit spread, and re-estimates the YOLO
networks' BatchNorm statistics on random images (with a variance floor, so that the network stays
well-conditioned); the models then give ~100 distinct detections an image.
"""

from __future__ import annotations

import warnings
import zipfile
from collections import OrderedDict
from pathlib import Path

import onnx
import pytest
import torch
from torch import Tensor, nn

from classify.base.checkpoint import load_checkpoint, save_checkpoint
from detect.cli import main as detect_main
from detect.export.exporter import ExportResult, build_graph, export_detector
from detect.export.graph import NotExportable
from detect.export.metadata import FORMAT, METADATA_KEY
from detect.export.rcnn import find_rcnn
from detect.export.runtime import ExportedDetector, load_exported, read_metadata
from detect.models.loading import DetectorSpec
from detect.models.registry import detector_entry, get_detector, list_detectors

CLASSES = ["cat", "dog", "digit 7"]
SIZE = 128
#: one case a registered family: (registry name, builder options)
FAMILIES = {
    "faster_rcnn-c4": ("faster_rcnn", dict(backbone="resnet18", fpn=False, out_channels=64, representation_size=128)),
    "faster_rcnn-fpn": ("faster_rcnn", dict(backbone="resnet18", fpn=True, out_channels=64, representation_size=128)),
    "tv_variant": ("faster_rcnn_mobilenet_v3_large_320_fpn", dict(out_channels=64, representation_size=128)),
    "tv_peer": ("tv_fasterrcnn_mobilenet_v3_large_320_fpn", {}),
    "yolov8n": ("yolov8n", {}),
    "yolo11n": ("yolo11n", {}),
    "yolov1": ("yolov1", dict(backbone="resnet18", reduce_channels=16, hidden=64)),
    "yolov3": ("yolov3", dict(backbone="resnet18", width=0.25)),
    "yolo_af": ("yolo_af", dict(backbone="resnet18", width=16)),
}
#: the modules whose builders the cases above cover
COVERED_BUILDERS = {"detect.models.rcnn.faster_rcnn", "detect.models.rcnn.tv_variants",
                    "detect.models.peers.torchvision", "detect.models.peers.ultralytics",
                    "detect.models.yolo.v1", "detect.models.yolo.v3", "detect.models.yolo.modern"}
#: (batch, height, width) of the random batches compared: batch 2, then 3 and 1 at other sizes
BATCHES = ((2, 96, 128), (3, 150, 100), (1, 64, 64))


class _Scaled(nn.Module):
    """A backbone whose feature maps are multiplied by ``scale``."""

    def __init__(self, body: nn.Module, scale: float) -> None:
        super().__init__()
        self.body, self.scale, self.out_channels = body, scale, body.out_channels

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        return OrderedDict((k, v * self.scale) for k, v in self.body(x).items())


def lively(model: nn.Module) -> nn.Module:
    """``model`` (random weights, eval mode) made input-dependent (see the module docstring)."""
    rcnn = find_rcnn(model)
    with torch.no_grad():
        if rcnn is not None:
            features = rcnn.backbone(torch.rand(2, 3, SIZE, SIZE))
            spread = torch.cat([f.flatten() for f in features.values()]).std().item()
            rcnn.backbone = _Scaled(rcnn.backbone, 1.0 / spread)
        else:
            norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
            for norm in norms:
                norm.momentum = None
                norm.reset_running_stats()
            model.net.train()
            model.net(torch.rand(8, 3, SIZE, SIZE))
            for norm in norms:
                norm.running_var += 0.1 * norm.running_var.mean()
    return model.eval()


def build(case: str) -> nn.Module:
    name, options = FAMILIES[case]
    torch.manual_seed(0)
    model = lively(get_detector(name, num_classes=len(CLASSES), image_size=SIZE, **options))
    if name.startswith("yolo"):
        model.configure_postprocess(score_threshold=1e-3)  # untrained: class scores ~0.01
    return model


def assert_same_detections(reference: list[dict[str, Tensor]], exported: list[dict[str, Tensor]]) -> int:
    """Same counts and labels, boxes ``allclose(rtol=1e-3, atol=1e-2 px)``, scores within 1e-4,
    each eager detection paired with the exported one of its label and nearest box (scores that
    differ by float rounding may swap neighbours).  Returns the number of detections."""
    assert len(reference) == len(exported)
    total = 0
    for i, (ref, out) in enumerate(zip(reference, exported)):
        assert set(out) == {"boxes", "scores", "labels"}
        assert out["boxes"].dtype == torch.float32 and out["scores"].dtype == torch.float32
        assert out["labels"].dtype == torch.int64
        assert len(ref["boxes"]) == len(out["boxes"]), f"image {i}: {len(ref['boxes'])} vs {len(out['boxes'])}"
        assert torch.all(out["scores"][:-1] >= out["scores"][1:]), "exported detections are sorted by score"
        distance = torch.cdist(ref["boxes"], out["boxes"], p=float("inf"))
        distance[ref["labels"][:, None] != out["labels"][None, :]] = float("inf")
        pairs = []
        for row in range(len(distance)):
            col = int(distance[row].argmin())
            assert torch.isfinite(distance[row, col]), f"image {i}: eager detection {row} has no exported match"
            pairs.append(col)
            distance[:, col] = float("inf")
        pairs = torch.tensor(pairs, dtype=torch.int64)
        if len(pairs):
            torch.testing.assert_close(out["boxes"][pairs], ref["boxes"], rtol=1e-3, atol=1e-2)
            torch.testing.assert_close(out["scores"][pairs], ref["scores"], rtol=0, atol=1e-4)
            assert torch.equal(out["labels"][pairs], ref["labels"])
        total += len(ref["boxes"])
    return total


@pytest.fixture(scope="module", params=list(FAMILIES))
def family(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """A lively model of each family and its ONNX and TorchScript files."""
    model = build(request.param)
    folder = tmp_path_factory.mktemp(request.param)
    name = FAMILIES[request.param][0]
    files = {fmt: export_detector(model, CLASSES, folder / f"model.{fmt}", fmt, source=f"test:{request.param}",
                                  detector=name) for fmt in ("onnx", "torchscript")}
    return request.param, model, files


# ----------------------------------------------------------------------------- parity


def test_the_cases_cover_every_registered_family() -> None:
    builders = {name: getattr(detector_entry(name).builder, "func", detector_entry(name).builder).__module__
                for name in list_detectors()}
    assert set(builders.values()) == COVERED_BUILDERS, builders
    assert {detector_entry(name).family for name, _ in FAMILIES.values()} == {
        detector_entry(name).family for name in list_detectors()}


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_exported_detections_match_eager_pytorch(family, fmt: str) -> None:
    case, model, files = family
    detector = load_exported(files[fmt].path)
    assert isinstance(detector, ExportedDetector) and not detector.training
    generator = torch.Generator().manual_seed(1)
    counts = []
    for batch, height, width in BATCHES:  # one file: batch 2, 3 and 1, three image sizes
        images = list(torch.rand(batch, 3, height, width, generator=generator))
        with torch.no_grad():
            counts.append(assert_same_detections(model(images), detector(images)))
    assert min(counts) > 0, f"{case}: no detections to compare"


def test_mixed_sizes_run_one_call_per_size(family) -> None:
    _, model, files = family
    detector = load_exported(files["onnx"].path)
    generator = torch.Generator().manual_seed(2)
    images = [torch.rand(3, 96, 128, generator=generator), torch.rand(3, 80, 80, generator=generator),
              torch.rand(3, 96, 128, generator=generator)]
    with torch.no_grad():
        reference = [model([image])[0] for image in images]  # eager one by one: no padding to a common size
        assert_same_detections(reference, detector(images))


@pytest.mark.parametrize(("case", "opset"), [("yolov8n", 18), ("faster_rcnn-c4", 16)])
def test_simplified_onnx_and_other_opsets_match(case: str, opset: int, tmp_path: Path) -> None:
    model = build(case)
    result = export_detector(model, CLASSES, tmp_path / "slim.onnx", opset=opset, simplify=True)
    assert result.opset == opset == onnx.load(str(result.path)).opset_import[0].version
    images = list(torch.rand(2, 3, 96, 128, generator=torch.Generator().manual_seed(6)))
    with torch.no_grad():
        assert assert_same_detections(model(images), load_exported(result.path)(images)) > 0


# ----------------------------------------------------------------------------- metadata and files


def test_metadata_round_trip(family) -> None:
    case, model, files = family
    name, _ = FAMILIES[case]
    settings = model.postprocess_settings()
    for fmt, result in files.items():
        assert isinstance(result, ExportResult) and result.format == fmt and result.bytes == result.path.stat().st_size
        file_format, metadata = read_metadata(result.path)
        assert file_format == fmt and metadata == result.metadata
        assert metadata.format == FORMAT and metadata.file_format == fmt
        assert metadata.class_names == CLASSES and metadata.detector == name and metadata.source == f"test:{case}"
        assert metadata.opset == (18 if fmt == "onnx" else None)
        assert metadata.device == (None if fmt == "onnx" else "cpu")
        assert metadata.settings == settings and metadata.nms_in_graph
        assert metadata.input["dynamic_batch"] and metadata.input["dynamic_size"] and metadata.input["name"] == "images"
        assert metadata.outputs["names"] == ["boxes", "scores", "labels", "batch_index"]
        assert metadata.image_size == SIZE
        assert metadata.preprocessing["kind"] == ("letterbox" if name.startswith("yolo") else "rcnn_resize")
        assert {"torch", "torchvision", "detect-pipeline"} <= set(metadata.versions)
        detector = load_exported(result.path)
        assert detector.metadata == metadata and detector.class_names == CLASSES
        assert detector.postprocess_settings() == settings
    onnx_model = onnx.load(str(files["onnx"].path))
    onnx.checker.check_model(onnx_model, full_check=True)
    assert METADATA_KEY in {p.key for p in onnx_model.metadata_props}
    assert {o.name for o in onnx_model.graph.output} == {"boxes", "scores", "labels", "batch_index"}
    with zipfile.ZipFile(files["torchscript"].path) as archive:
        assert any(n.endswith(f"extra/{METADATA_KEY}") for n in archive.namelist())


# ----------------------------------------------------------------------------- post-processing


def test_postprocess_can_only_be_tightened(family) -> None:
    case, _, files = family
    detector = load_exported(files["onnx"].path)
    baked = detector.postprocess_settings()
    images = list(torch.rand(2, 3, 96, 128, generator=torch.Generator().manual_seed(3)))
    with torch.no_grad():
        loose = detector(images)
    threshold = float(loose[0]["scores"].median())
    detector.configure_postprocess(score_threshold=threshold, max_detections=5)
    assert detector.postprocess_settings() == type(baked)(threshold, baked.nms_threshold, 5)
    with torch.no_grad():
        tight = detector(images)
    for full, part in zip(loose, tight):
        expected = torch.where(full["scores"] > threshold)[0][:5]
        assert torch.equal(part["boxes"], full["boxes"][expected]) and torch.equal(part["labels"], full["labels"][expected])
    tightened = build(case)  # the eager model with the same settings gives the same detections
    tightened.configure_postprocess(score_threshold=threshold, max_detections=5)
    with torch.no_grad():
        assert_same_detections(tightened(images), tight)
    with pytest.raises(ValueError, match="re-export the model with --iou 0.3"):
        detector.configure_postprocess(nms_threshold=0.3)
    with pytest.raises(ValueError, match="re-export the model with --score-threshold"):
        detector.configure_postprocess(score_threshold=baked.score_threshold / 2)
    with pytest.raises(ValueError, match=f"--max-det {baked.max_detections + 1}"):
        detector.configure_postprocess(max_detections=baked.max_detections + 1)
    detector.configure_postprocess(score_threshold=baked.score_threshold, nms_threshold=baked.nms_threshold,
                                   max_detections=baked.max_detections)
    assert detector.postprocess_settings() == baked


def test_baked_settings_come_from_the_model(tmp_path: Path) -> None:
    model = build("faster_rcnn-c4")
    model.configure_postprocess(score_threshold=0.3, nms_threshold=0.4, max_detections=7)
    result = export_detector(model, CLASSES, tmp_path / "tight.onnx")
    detector = load_exported(result.path)
    assert detector.postprocess_settings() == model.postprocess_settings()
    images = list(torch.rand(2, 3, 96, 128, generator=torch.Generator().manual_seed(4)))
    with torch.no_grad():
        assert_same_detections(model(images), detector(images))


# ----------------------------------------------------------------------------- the runtime as a module


def test_exported_detector_behaves_like_a_module(family) -> None:
    _, _, files = family
    detector = load_exported(files["torchscript"].path)
    assert detector.eval() is detector and not detector.training
    assert detector.to("cpu") is detector and detector.device == torch.device("cpu")
    with pytest.raises(ValueError, match="traced on cpu runs there only .* again with --device cuda"):
        detector.to("cuda")
    with pytest.raises(ValueError, match="traced on cpu runs there only"):
        load_exported(files["torchscript"].path, "cuda")
    with pytest.raises(ValueError, match="runs in float32"):
        detector.to(torch.float16)
    assert detector.device == torch.device("cpu")
    with pytest.raises(ValueError, match="inference only"):
        detector.train()
    with pytest.raises(ValueError, match="inference only"):
        detector([torch.rand(3, 64, 64)], [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}])
    with pytest.raises(TypeError, match="non-empty list"):
        detector([])
    with pytest.raises(ValueError, match=r"images\[0\]: expected Tensor\[3, H, W\]"):
        detector([torch.rand(1, 64, 64)])
    with pytest.raises(TypeError, match="float image"):
        detector([torch.zeros(3, 64, 64, dtype=torch.uint8)])


def test_static_file_refuses_other_shapes(tmp_path: Path) -> None:
    model = build("yolov8n")
    result = export_detector(model, CLASSES, tmp_path / "static.onnx", dynamic=False, image_size=(96, 128))
    assert result.metadata.input["shape"] == [1, 3, 96, 128] and not result.metadata.dynamic
    detector = load_exported(result.path)
    images = list(torch.rand(2, 3, 96, 128, generator=torch.Generator().manual_seed(5)))
    with torch.no_grad():
        assert_same_detections(model(images), detector(images))  # one call an image
    with pytest.raises(ValueError, match=r"exported for 96 x 128 images only \(static shapes\); got 64 x 64"):
        detector([torch.rand(3, 64, 64)])


def test_empty_detections(tmp_path: Path) -> None:
    model = build("faster_rcnn-c4")
    model.configure_postprocess(score_threshold=1.0)  # nothing scores above 1
    for fmt in ("onnx", "torchscript"):
        detector = load_exported(export_detector(model, CLASSES, tmp_path / f"none.{fmt}", fmt).path)
        out = detector(list(torch.rand(2, 3, 64, 80)))
        assert [len(o["boxes"]) for o in out] == [0, 0] and out[0]["boxes"].shape == (0, 4)


# ----------------------------------------------------------------------------- refusals and bad files


def test_unexportable_models_say_why(tmp_path: Path) -> None:
    multi = get_detector("faster_rcnn", backbone="resnet18", fpn=False, num_classes=2, image_size=64,
                         extra_test_sizes=[96])
    with pytest.raises(NotExportable, match=r"faster_rcnn: cannot export a multi-size test \(extra_test_sizes=\[96\]"):
        export_detector(multi, None, tmp_path / "multi.onnx")
    rescored = get_detector("faster_rcnn", backbone="resnet18", fpn=False, num_classes=2, image_size=64)
    rescored.rescorer = nn.Identity()  # stands for a CropRescorer (rescore_with)
    with pytest.raises(NotExportable, match=r"cannot export the crop rescorer \(rescore_with\)"):
        export_detector(rescored, None, tmp_path / "rescored.torchscript", "torchscript")
    with pytest.raises(NotExportable, match="no export graph for a Linear"):
        build_graph(nn.Linear(2, 2))
    assert issubclass(NotExportable, ValueError)
    assert not list(tmp_path.iterdir())  # nothing written


def test_bad_export_arguments(tmp_path: Path) -> None:
    model = get_detector("faster_rcnn", backbone="resnet18", fpn=False, num_classes=2, image_size=64)
    with pytest.raises(ValueError, match="export format: expected one of onnx, torchscript, got 'tflite'"):
        export_detector(model, None, tmp_path / "m.tflite", "tflite")
    with pytest.raises(ValueError, match="opset 13: expected 16 to 20"):
        export_detector(model, None, tmp_path / "m.onnx", opset=13)
    with pytest.raises(ValueError, match="--opset goes with the onnx format"):
        export_detector(model, None, tmp_path / "m.torchscript", "torchscript", opset=18)
    with pytest.raises(ValueError, match="3 class names for a model of 2 classes"):
        export_detector(model, CLASSES, tmp_path / "m.onnx")


def test_bad_files_are_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="exported model not found: .*absent.onnx"):
        load_exported(tmp_path / "absent.onnx")
    with pytest.raises(IsADirectoryError, match="expected a file, got the folder"):
        load_exported(tmp_path)
    noise = tmp_path / "noise.onnx"
    noise.write_bytes(torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(0),
                                    dtype=torch.uint8).numpy().tobytes())
    with pytest.raises(ValueError, match=f"{noise}: not an ONNX or TorchScript model"):
        load_exported(noise)
    plain = tmp_path / "plain.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(nn.Conv2d(3, 4, 3), (torch.rand(1, 3, 8, 8),), str(plain), dynamo=False)
    with pytest.raises(ValueError, match=f"{plain}: an ONNX model without detect export metadata"):
        load_exported(plain)
    traced = tmp_path / "plain.torchscript"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.trace(nn.Conv2d(3, 4, 3), torch.rand(1, 3, 8, 8)), str(traced))
    with pytest.raises(ValueError, match=f"{traced}: a TorchScript file without detect export metadata"):
        load_exported(traced)
    weights = save_checkpoint(tmp_path / "best.pt", {"w": torch.zeros(1)}, class_names=["a"])
    with pytest.raises(ValueError, match="a torch.save file .*not an exported model"):
        load_exported(weights)
    foreign = tmp_path / "foreign.onnx"
    model = onnx.load(str(plain))
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, '{"format": "someone else"}'
    onnx.save(model, str(foreign))
    with pytest.raises(ValueError, match="not this project's export metadata"):
        load_exported(foreign)


# ----------------------------------------------------------------------------- detect export


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``detect train``-style checkpoint of a small Faster R-CNN (random weights)."""
    kwargs = dict(backbone="resnet18", fpn=False, out_channels=32, representation_size=64)
    torch.manual_seed(0)
    model = get_detector("faster_rcnn", num_classes=2, image_size=64, **kwargs)
    folder = tmp_path_factory.mktemp("checkpoint")
    return save_checkpoint(folder / "best.pt", model.state_dict(), class_names=["cat", "dog"],
                           config={"detector": "faster_rcnn", "image_size": 64, "detector_kwargs": kwargs})


def test_cli_exports_a_checkpoint(tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = detect_main(["export", str(tiny_checkpoint), "--score-threshold", "0.1", "--max-det", "20"])
    out = capsys.readouterr().out
    path = tiny_checkpoint.with_suffix(".onnx")
    assert code == 0 and path.is_file()
    assert f"to {path}" in out and "onnx, opset 18" in out and " MB" in out
    assert "agrees with eager PyTorch" in out and "labels agree" in out and "largest box difference" in out
    detector = load_exported(path)
    assert detector.class_names == ["cat", "dog"] and detector.metadata.source == str(tiny_checkpoint)
    assert detector.postprocess_settings().score_threshold == 0.1
    assert detector.postprocess_settings().max_detections == 20
    target = tmp_path / "out"
    code = detect_main(["export", str(tiny_checkpoint), "--format", "torchscript", "--out", f"{target}/", "--iou",
                        "0.6"])
    assert code == 0 and (target / "best.torchscript").is_file()
    assert load_exported(target / "best.torchscript").postprocess_settings().nms_threshold == 0.6


def test_cli_errors_are_one_line(tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kwargs = dict(backbone="resnet18", fpn=False, out_channels=32, representation_size=64, extra_test_sizes=[96])
    model = get_detector("faster_rcnn", num_classes=2, image_size=64, **kwargs)
    multi = save_checkpoint(tmp_path / "multi.pt", model.state_dict(), class_names=["cat", "dog"],
                            config={"detector": "faster_rcnn", "image_size": 64, "detector_kwargs": kwargs})
    cases = [
        ([str(multi)], "error: faster_rcnn: cannot export a multi-size test"),
        ([str(tmp_path / "absent.pt")], "error: checkpoint not found"),
        ([str(tiny_checkpoint), "--opset", "9"], "error: opset 9: expected 16 to 20"),
        ([str(tiny_checkpoint), "--iou", "2"], "error: NMS IoU threshold: expected a number in [0, 1], got 2.0"),
        ([str(tiny_checkpoint), "--format", "torchscript", "--simplify"], "error: --simplify goes with --format onnx"),
        ([str(tiny_checkpoint), "--model", "yolov8n"], "error: expected a registry detector name or a checkpoint"),
        ([str(tiny_checkpoint), "--device", "cuda"], "error: --device cuda goes with --format torchscript"),
    ]
    for args, message in cases:
        code = detect_main(["export", *args, "--out", str(tmp_path / "x.onnx")])
        err = capsys.readouterr().err
        assert code == 2 and err.startswith(message) and err.count("\n") == 1, (args, err)
    assert not (tmp_path / "x.onnx").exists()


def test_cli_writes_a_half_precision_checkpoint_that_loads_as_float32(tiny_checkpoint: Path, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "small.pt"
    code = detect_main(["export", str(tiny_checkpoint), "--format", "checkpoint", "--half", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0 and f"wrote {out}" in printed and "float16 weights" in printed and "labels agree" in printed
    assert out.stat().st_size < 0.6 * tiny_checkpoint.stat().st_size
    saved = load_checkpoint(out)
    assert {v.dtype for v in saved.model.values() if v.is_floating_point()} == {torch.float16}
    assert saved.class_names == ["cat", "dog"] and saved.config["detector"] == "faster_rcnn"
    original, _ = DetectorSpec(checkpoint=tiny_checkpoint).load()
    upcast, names = DetectorSpec(checkpoint=out).load()
    assert names == ["cat", "dog"] and all(p.dtype == torch.float32 for p in upcast.parameters())
    for a, b in zip(original.state_dict().values(), upcast.state_dict().values()):
        if a.is_floating_point():
            torch.testing.assert_close(b, a.half().float())


def test_half_goes_with_the_checkpoint_format(tiny_checkpoint: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    for args, message in [(["--half"], "error: --half goes with --format checkpoint"),
                          (["--format", "checkpoint", "--out", str(tiny_checkpoint)], "is the checkpoint itself")]:
        code = detect_main(["export", str(tiny_checkpoint), *args])
        err = capsys.readouterr().err
        assert code == 2 and message in err, err
