"""model.normalize: the normalisation is the model's first layer, the model takes pixels."""

from __future__ import annotations

import copy

import pytest
import torch

from robust_compress.errors import UserError
from robust_compress.models.normalize import input_normalization, with_input_normalization
from robust_compress.models.specs import build_model

MEAN, STD = [0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]


def test_normalized_model_takes_pixels_and_keeps_its_state_dict():
    torch.manual_seed(0)
    plain = build_model("builtin:cnn_tiny", 10, 3).eval()
    model = with_input_normalization(copy.deepcopy(plain), MEAN, STD, channels=3).eval()
    x = torch.rand(4, 3, 32, 32)
    normalised = (x - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]
    assert torch.allclose(model(x), plain(normalised), atol=1e-6)
    assert model.state_dict().keys() == plain.state_dict().keys()  # user weights still load
    assert isinstance(model, type(plain))
    mean, std = input_normalization(model)
    assert mean == pytest.approx(MEAN) and std == pytest.approx(STD)
    twin = copy.deepcopy(model)
    assert torch.allclose(twin(x), model(x))


def test_normalize_needs_one_value_per_channel():
    model = build_model("builtin:cnn_tiny", 10, 1)
    with pytest.raises(UserError, match="3 means and 3 stds for 1-channel"):
        with_input_normalization(model, MEAN, STD, channels=1)


def test_recipe_normalize_reaches_the_onnx_file(tmp_path):
    from robust_compress.adapters.onnxruntime.runtime import parity_max_abs
    from robust_compress.engine.session import Session
    from robust_compress.recipe import parse_recipe

    recipe = parse_recipe(
        "name: n\nmodel: {spec: builtin:cnn_tiny, normalize: {mean: [0.3, 0.4, 0.5], "
        "std: [0.2, 0.2, 0.25]}}\ndata: {name: synthetic, options: {channels: 3, size: 32, "
        "train: 64, test: 32}, batch_size: 32}\nthreat: {eps: 0.03}\nstages:\n"
        "  - train: {method: natural, epochs: 1}\n  - export: {fp32: true}\n"
    )
    session = Session(recipe, out=tmp_path / "run")
    session.run()
    mean, std = input_normalization(session.model)
    assert mean == pytest.approx([0.3, 0.4, 0.5]) and std == pytest.approx([0.2, 0.2, 0.25])
    x = session.test_data.head(8).x  # pixels in [0, 1]
    assert parity_max_abs(session.model, tmp_path / "run" / "model.onnx", x) < 1e-4
