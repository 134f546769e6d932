import sys

import pytest
import torch

from robust_compress.errors import ModelSpecError
from robust_compress.models.specs import build_model


def test_timm_missing_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm raises ImportError
    with pytest.raises(ModelSpecError, match=r"pip install 'robust-compress\[timm\]'"):
        build_model("timm:resnet18", 10, 3)


def test_timm_recipe_spec_validates():
    from robust_compress.recipe.schema import ModelConfig

    assert ModelConfig(spec="timm:resnet18").spec == "timm:resnet18"


def test_timm_convnet_classes_and_channels():
    pytest.importorskip("timm")
    model = build_model("timm:resnet18", 7, 1, input_size=(32, 32)).eval()
    assert model(torch.rand(2, 1, 32, 32)).shape == (2, 7)


def test_timm_vit_gets_img_size_from_the_data():
    pytest.importorskip("timm")
    model = build_model("timm:deit_tiny_patch16_224", 10, 3, input_size=(64, 64)).eval()
    assert model.patch_embed.img_size == (64, 64)
    assert model(torch.rand(1, 3, 64, 64)).shape == (1, 10)


def test_timm_unknown_model_suggests():
    pytest.importorskip("timm")
    with pytest.raises(ModelSpecError, match="Did you mean: resnet18"):
        build_model("timm:resnet19", 10, 3)
