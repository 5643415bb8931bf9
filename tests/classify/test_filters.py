"""``classify.inspect.filters``: known kernel responses, parity with ``cv2.filter2D``, bad input."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from classify.inspect.filters import (
    apply_filters,
    default_image,
    filter_figure,
    gaussian_kernel,
    get_kernel,
    list_filters,
    load_grayscale,
)

CV_BORDERS = {"reflect": cv2.BORDER_REFLECT_101, "replicate": cv2.BORDER_REPLICATE,
              "zeros": cv2.BORDER_CONSTANT}


def step_image(h: int = 8, w: int = 8) -> torch.Tensor:
    """A vertical step edge: columns < w/2 are 0, the others 1; ``Tensor[1, h, w]``."""
    image = torch.zeros(1, h, w)
    image[..., w // 2:] = 1.0
    return image


def test_kernel_values_and_names() -> None:
    assert list_filters() == [
        "mean3", "mean5", "gaussian", "sobel_x", "sobel_y", "prewitt_x", "prewitt_y",
        "roberts_x", "roberts_y", "laplacian4", "laplacian8", "line_horizontal",
        "line_vertical", "line_p45", "line_m45"]
    assert get_kernel("sobel_x").tolist() == [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]
    assert torch.equal(get_kernel("sobel_y"), get_kernel("sobel_x").T)
    assert torch.equal(get_kernel("prewitt_y"), get_kernel("prewitt_x").T)
    assert get_kernel("roberts_x").tolist() == [[1, 0], [0, -1]]
    assert get_kernel("laplacian8").tolist() == [[1, 1, 1], [1, -8, 1], [1, 1, 1]]
    assert get_kernel("line_p45").tolist() == [[-1, -1, 2], [-1, 2, -1], [2, -1, -1]]
    for name in list_filters():  # derivative, Laplacian and line kernels ignore flat regions
        total = float(get_kernel(name).sum())
        assert total == pytest.approx(1.0 if name.startswith(("mean", "gaussian")) else 0.0, abs=1e-6)


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.5])
def test_gaussian_sums_to_one_and_matches_opencv(sigma: float) -> None:
    k = gaussian_kernel(sigma)
    size = 2 * int(np.ceil(3 * sigma)) + 1
    assert k.shape == (size, size)
    assert float(k.sum()) == pytest.approx(1.0, abs=1e-6)
    assert torch.equal(k, k.flip(0)) and torch.equal(k, k.T)
    assert k.argmax() == (size * size) // 2  # the peak is the centre
    g = cv2.getGaussianKernel(size, sigma)
    np.testing.assert_allclose(k.numpy(), g @ g.T, atol=1e-7)


def test_sobel_and_prewitt_on_a_vertical_step_edge() -> None:
    out = apply_filters(step_image(), ["sobel_x", "sobel_y", "prewitt_x", "roberts_x"])
    # columns 3 and 4 straddle the edge: (1 - 0) * (1 + 2 + 1) = 4, flat columns give 0
    expected = torch.tensor([0, 0, 0, 4, 4, 0, 0, 0.0]).expand(1, 8, 8)
    assert torch.equal(out["sobel_x"], expected)
    assert torch.equal(out["prewitt_x"], expected * 3 / 4)
    assert torch.equal(out["sobel_y"], torch.zeros(1, 8, 8))  # no change along y
    # Roberts, anchor (1, 1): img[y-1, x-1] - img[y, x] = -1 only in column 4
    assert torch.equal(out["roberts_x"], torch.tensor([0, 0, 0, 0, -1.0, 0, 0, 0]).expand(1, 8, 8))


def test_flat_images_and_ramps() -> None:
    flat = torch.full((1, 9, 9), 0.37)
    out = apply_filters(flat)
    for name, response in out.items():
        target = flat if name.startswith(("mean", "gaussian")) else torch.zeros_like(flat)
        torch.testing.assert_close(response, target, atol=1e-6, rtol=0)
    ramp = torch.arange(9.0).expand(1, 9, 9)  # grows by 1 per column
    lap = apply_filters(ramp, ["laplacian4", "laplacian8", "sobel_x"])
    assert torch.equal(lap["laplacian4"][..., 1:-1], torch.zeros(1, 9, 7))  # linear -> 0
    assert torch.equal(lap["laplacian8"][..., 1:-1], torch.zeros(1, 9, 7))
    assert torch.equal(lap["sobel_x"][..., 1:-1], torch.full((1, 9, 7), 8.0))  # 2 px * 4


@pytest.mark.parametrize("name", ["sobel_x", "laplacian4", "line_p45", "roberts_y"])
def test_impulse_response_is_the_kernel_rotated_180_degrees(name: str) -> None:
    # cross-correlation (conv2d, cv2.filter2D): a single bright pixel stamps the flipped kernel
    image = torch.zeros(1, 7, 7)
    image[0, 3, 3] = 1.0
    k = get_kernel(name)
    kh, kw = k.shape
    out = apply_filters(image, [name], border="zeros")[name][0]
    top, left = 3 - (kh - 1 - kh // 2), 3 - (kw - 1 - kw // 2)
    assert torch.equal(out[top:top + kh, left:left + kw], k.flip(0, 1))
    assert float(out.abs().sum()) == float(k.abs().sum())


def line_image(kind: str, n: int = 15) -> torch.Tensor:
    image = torch.zeros(1, n, n)
    idx = torch.arange(n)
    if kind == "line_horizontal":
        image[0, n // 2, :] = 1
    elif kind == "line_vertical":
        image[0, :, n // 2] = 1
    elif kind == "line_m45":  # "\": main diagonal
        image[0, idx, idx] = 1
    else:  # "/": rising to the right as displayed
        image[0, idx.flip(0), idx] = 1
    return image


@pytest.mark.parametrize("kind", ["line_horizontal", "line_vertical", "line_p45", "line_m45"])
def test_line_detectors_respond_most_to_their_own_orientation(kind: str) -> None:
    detectors = ["line_horizontal", "line_vertical", "line_p45", "line_m45"]
    out = apply_filters(line_image(kind), detectors)
    peaks = {name: float(r[0, 2:-2, 2:-2].max()) for name, r in out.items()}  # interior
    assert peaks[kind] == 6.0  # three 2s on the line, nothing under the -1s
    assert max(peaks, key=peaks.get) == kind
    assert all(v <= 3.0 for name, v in peaks.items() if name != kind)


@pytest.mark.parametrize("border", list(CV_BORDERS))
def test_parity_with_cv2_filter2d_on_random_images(border: str) -> None:
    rng = np.random.default_rng(0)
    pixels = rng.random((37, 29), dtype=np.float32)
    out = apply_filters(torch.from_numpy(pixels)[None], sigma=1.3, border=border)
    for name, response in out.items():
        kernel = get_kernel(name, sigma=1.3).numpy()
        ref = cv2.filter2D(pixels, -1, kernel, borderType=CV_BORDERS[border])
        np.testing.assert_allclose(response[0].numpy(), ref, atol=2e-6, err_msg=name)


def test_bad_inputs_say_what_was_expected() -> None:
    with pytest.raises(ValueError, match=r"expected a grayscale image Tensor\[1, H, W\], got shape \(3, 8, 8\)"):
        apply_filters(torch.zeros(3, 8, 8))
    with pytest.raises(TypeError, match="must be floating point, got torch.uint8"):
        apply_filters(torch.zeros(1, 8, 8, dtype=torch.uint8))
    with pytest.raises(TypeError, match=r"image must be a Tensor\[1, H, W\], got ndarray"):
        apply_filters(np.zeros((1, 8, 8)))
    with pytest.raises(ValueError, match="unknown filter 'sobelx'; did you mean 'sobel_x'"):
        apply_filters(torch.zeros(1, 8, 8), ["laplacian4", "sobelx"])
    with pytest.raises(ValueError, match="border must be one of"):
        apply_filters(torch.zeros(1, 8, 8), border="wrap")
    with pytest.raises(ValueError, match="sigma must be a number > 0"):
        apply_filters(torch.zeros(1, 8, 8), ["gaussian"], sigma=0)
    with pytest.raises(ValueError, match=r"too small for a 5x5 kernel"):
        apply_filters(torch.zeros(1, 2, 2), ["mean5"])
    with pytest.raises(ValueError, match="size must be an odd int"):
        gaussian_kernel(1.0, size=4)


def test_load_grayscale_and_figure(tmp_path: Path) -> None:
    photo = default_image()
    image = load_grayscale(photo)
    h, w = cv2.imread(str(photo)).shape[:2]
    assert image.shape == (1, h, w) and image.dtype == torch.float32
    assert 0.0 <= float(image.min()) < float(image.max()) <= 1.0
    small = image[:, :64, :96]
    png = filter_figure(small, apply_filters(small, ["gaussian", "sobel_x", "line_m45"]),
                        tmp_path / "sub" / "grid.png", cols=2)
    written = cv2.imread(str(png))
    assert written is not None and written.shape[0] > 200 and written.shape[1] > 200
    with pytest.raises(FileNotFoundError, match="image not found: .*missing.png"):
        load_grayscale(tmp_path / "missing.png")
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(ValueError, match=r"cannot decode image .*notes\.png: cannot identify image file"):
        load_grayscale(tmp_path / "notes.png")  # refused from the header, before OpenCV is asked
