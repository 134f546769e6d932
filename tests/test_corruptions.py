"""The corruptions of the corruption audit: shape, range, seeds, severity, registry, formulas."""

import math

import numpy as np
import pytest
import torch

from robust_compress.audit.corruption_audit import CorruptionConfig, evaluate_corruptions
from robust_compress.audit.corruptions import CORRUPTIONS, corrupt, disk_kernel
from robust_compress.audit.stats import wilson
from robust_compress.errors import UserError

NAMES = [e.name for e in CORRUPTIONS.entries()]
RANDOM = ("gaussian_noise", "shot_noise", "impulse_noise")


@pytest.fixture(scope="module")
def images(synthetic_test):
    return synthetic_test.head(8).x.float()


def test_the_seven_of_the_issue_are_registered():
    wanted = {"gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "contrast"}
    assert wanted | {"gaussian_blur", "brightness", "jpeg"} <= set(NAMES)
    for entry in CORRUPTIONS.entries():
        assert len(entry.meta["params"]) == 5 and entry.meta["param"] and entry.description


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(3, 1, 28, 28), (2, 3, 16, 16)])
def test_shape_range_dtype_and_seed(name, shape):
    x = torch.rand(shape, generator=torch.Generator().manual_seed(1))
    for severity in (1, 3, 5):
        out = corrupt(x, name, severity, seed=7)
        assert out.shape == x.shape and out.dtype == x.dtype
        assert float(out.min()) >= 0 and float(out.max()) <= 1
        assert torch.equal(out, corrupt(x, name, severity, seed=7))
    if name in RANDOM:
        assert not torch.equal(corrupt(x, name, 3, seed=7), corrupt(x, name, 3, seed=8))


@pytest.mark.parametrize("name", NAMES)
def test_severity_5_is_further_from_the_clean_image_than_1(name, images):
    distance = [float((corrupt(images, name, s) - images).norm()) for s in (1, 5)]
    assert distance[1] > distance[0] > 0


@pytest.mark.parametrize("name", RANDOM)
def test_an_image_gets_the_same_noise_whatever_follows_it(name, images):
    assert torch.equal(corrupt(images[:3], name, 2), corrupt(images, name, 2)[:3])


def test_unknown_name_severity_and_range_are_user_errors(images):
    with pytest.raises(UserError, match="Did you mean: gaussian_noise"):
        corrupt(images, "gausian_noise", 1)
    with pytest.raises(UserError, match="severity must be 1..5"):
        corrupt(images, "contrast", 6)
    with pytest.raises(UserError, match=r"\[0, 1\]"):
        corrupt(images * 2 - 1, "contrast", 1)
    with pytest.raises(UserError, match="1 or 3 channels"):
        corrupt(torch.rand(1, 2, 8, 8), "jpeg", 1)


def test_a_new_corruption_is_one_function_and_one_registration(images):
    def invert(x, mix, rng):
        return mix * (1 - x) + (1 - mix) * x

    CORRUPTIONS.add("invert_test", invert, params=(0.1, 0.2, 0.3, 0.4, 0.5), param="mix")
    try:
        out = corrupt(images, "invert_test", 5)
        assert torch.allclose(out, 0.5 * (1 - images) + 0.5 * images)
        assert "invert_test" in CorruptionConfig(kinds=["invert_test"]).kinds
    finally:
        CORRUPTIONS.remove("invert_test")


def test_brightness_and_contrast_of_a_grey_image(images):
    assert torch.allclose(corrupt(images, "brightness", 5), (images + 0.3).clamp(0, 1), atol=1e-6)
    mean = images.double().mean(dim=(2, 3), keepdim=True)
    want = ((images - mean) * 0.15 + mean).clamp(0, 1).float()
    assert torch.allclose(corrupt(images, "contrast", 5), want, atol=1e-6)


def test_brightness_keeps_hue_and_saturation_of_colour():
    x = torch.tensor([0.2, 0.4, 0.1]).reshape(1, 3, 1, 1)
    out = corrupt(x, "brightness", 2)  # value 0.4 -> 0.5: every channel scales by 1.25
    assert torch.allclose(out.flatten(), torch.tensor([0.25, 0.5, 0.125]))


def test_blurs_match_scipy_and_the_official_kernels(images):
    ndimage = pytest.importorskip("scipy.ndimage")
    x = images.double().numpy()
    for severity, sigma in ((1, 0.4), (5, 1.0)):  # skimage.filters.gaussian is this call
        want = np.stack([ndimage.gaussian_filter(im[0], sigma, mode="nearest") for im in x])
        got = corrupt(images, "gaussian_blur", severity)[:, 0].double().numpy()
        assert np.allclose(got, np.clip(want, 0, 1), atol=1e-6)
    for severity, (radius, alias) in ((1, (0.3, 0.4)), (5, (1.5, 0.1))):
        grid = np.arange(-8, 9)
        xx, yy = np.meshgrid(grid, grid)
        disk = (xx**2 + yy**2 <= radius**2).astype(float)
        g = np.exp(-np.array([1.0, 0.0, 1.0]) / (2 * alias**2))
        kernel = ndimage.correlate(disk / disk.sum(), np.outer(g, g) / g.sum() ** 2, mode="mirror")
        want = np.stack([ndimage.correlate(im[0], kernel, mode="mirror") for im in x])
        got = corrupt(images, "defocus_blur", severity)[:, 0].double().numpy()
        assert np.allclose(got, np.clip(want, 0, 1), atol=1e-6)
        assert math.isclose(float(disk_kernel(radius, alias).sum()), 1.0)


def test_jpeg_of_colour_images_is_close_but_lossy():
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    x = torch.nn.functional.avg_pool2d(x, 3, 1, 1)  # smooth images code well
    out = corrupt(x, "jpeg", 1)
    assert 0 < float((out - x).abs().mean()) < 0.1


def test_evaluation_counts_cells_with_wilson_intervals(synthetic_test):
    config = CorruptionConfig(samples=20, kinds=["contrast", "jpeg"], severities=[1, 5])
    y = synthetic_test.head(20).y

    def predict(x):  # a constant classifier: class 3 whatever the image
        return torch.nn.functional.one_hot(torch.full((len(x),), 3), 10).float()

    result = evaluate_corruptions(predict, synthetic_test, config)
    hits = int((y == 3).sum())
    assert result["samples"] == 20 and result["clean"]["correct"] == hits
    cell = result["per_corruption"]["jpeg"][1]
    assert cell["severity"] == 5 and cell["correct"] == hits
    assert cell["ci"] == list(wilson(hits, 20))
    assert result["mean"] == pytest.approx(hits / 20) and result["worst"]["kind"] == "contrast"


def test_the_parameter_table_in_the_docs_is_the_registry():
    from pathlib import Path

    from robust_compress.audit.corruptions import parameter_rows

    text = (Path(__file__).parent.parent / "docs" / "audit.md").read_text()
    block = text.split("<!-- corruption-parameters:begin -->\n", 1)[1].split("\n<!--", 1)[0]
    assert block.strip() == "\n".join(parameter_rows())
