import logging
import sys
import textwrap

import pytest
import torch

from robust_compress.errors import CheckpointError, ModelSpecError
from robust_compress.models.specs import build_model, count_params, load_weights


def test_cnn_small_size_and_shape():
    model = build_model("builtin:cnn_small")
    assert 100_000 <= count_params(model) <= 300_000
    assert model(torch.rand(3, 1, 28, 28)).shape == (3, 10)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())


def test_unknown_builtin_suggests():
    with pytest.raises(ModelSpecError, match="Did you mean: cnn_small"):
        build_model("builtin:cnn_smal")


def test_spec_without_prefix_explains_forms():
    with pytest.raises(ModelSpecError, match="builtin:NAME"):
        build_model("cnn_small")


def test_unknown_prefix():
    with pytest.raises(ModelSpecError, match="torchvision"):
        build_model("torchvison:resnet18")


def test_torchvision_adapted_to_channels_and_classes():
    model = build_model("torchvision:resnet18", num_classes=7, in_channels=1)
    assert model(torch.rand(2, 1, 32, 32)).shape == (2, 7)


def test_unknown_torchvision_model_suggests():
    with pytest.raises(ModelSpecError, match="resnet18"):
        build_model("torchvision:resnet19")


def test_py_factory(tmp_path, monkeypatch):
    (tmp_path / "my_models.py").write_text(
        textwrap.dedent("""
        import torch.nn as nn
        def make(num_classes):
            return nn.Sequential(nn.Flatten(), nn.Linear(784, num_classes))
        def not_a_model():
            return 3
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    model = build_model("py:my_models:make", num_classes=4)
    assert model(torch.rand(1, 1, 28, 28)).shape == (1, 4)
    with pytest.raises(ModelSpecError, match="not a torch nn.Module"):
        build_model("py:my_models:not_a_model")
    with pytest.raises(ModelSpecError, match="Did you mean: make"):
        build_model("py:my_models:mak")
    with pytest.raises(ModelSpecError, match="cannot import"):
        build_model("py:no_such_module_xyz:make")
    sys.modules.pop("my_models", None)


def test_load_weights_roundtrip(tmp_path):
    a, b = build_model("builtin:cnn_small"), build_model("builtin:cnn_small")
    torch.save(a.state_dict(), tmp_path / "w.pt")
    load_weights(b, tmp_path / "w.pt")
    x = torch.rand(2, 1, 28, 28)
    assert torch.equal(a.eval()(x), b.eval()(x))


def test_checkpoint_that_is_not_a_state_dict(tmp_path):
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="not a state dict"):
        load_weights(build_model("builtin:cnn_small"), tmp_path / "list.pt")


def test_checkpoint_with_pickled_module_is_refused(tmp_path):
    torch.save(build_model("builtin:cnn_small"), tmp_path / "module.pt")
    with pytest.raises(CheckpointError, match="weights_only"):
        load_weights(build_model("builtin:cnn_small"), tmp_path / "module.pt")


def test_checkpoint_of_other_model(tmp_path):
    torch.save(build_model("builtin:cnn_tiny").state_dict(), tmp_path / "tiny.pt")
    with pytest.raises(CheckpointError, match="does not fit"):
        load_weights(build_model("builtin:cnn_small"), tmp_path / "tiny.pt")


def test_torchvision_native_architecture_for_rgb(caplog):
    from torchvision.models import resnet18

    with caplog.at_level(logging.INFO, logger="robust_compress"):
        model = build_model("torchvision:resnet18", num_classes=10, in_channels=3)
    native = resnet18(num_classes=10)
    assert [tuple(p.shape) for p in model.parameters()] == [
        tuple(p.shape) for p in native.parameters()
    ]
    assert "first conv" not in caplog.text


@pytest.mark.parametrize(
    ("name", "layer"), [("resnet18", "conv1"), ("mobilenet_v2", "features.0.0")]
)
def test_torchvision_first_conv_replaced_and_logged(caplog, name, layer):
    with caplog.at_level(logging.INFO, logger="robust_compress"):
        model = build_model(f"torchvision:{name}", num_classes=10, in_channels=1)
    assert model.get_submodule(layer).in_channels == 1
    assert f"torchvision:{name}: first conv {layer} takes 1 channel instead of 3" in caplog.text
    assert model.eval()(torch.rand(1, 1, 64, 64)).shape == (1, 10)


def test_build_model_keeps_positional_signature_and_offers_input_size(tmp_path, monkeypatch):
    (tmp_path / "sized_models.py").write_text(
        textwrap.dedent("""
        import torch.nn as nn
        def make(num_classes, in_channels, input_size=None):
            h, w = input_size
            return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * h * w, num_classes))
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    model = build_model("py:sized_models:make", 5, 3, input_size=(8, 6))
    assert model(torch.rand(2, 3, 8, 6)).shape == (2, 5)
    assert build_model("builtin:cnn_tiny", 4, 3, input_size=(32, 32))(
        torch.rand(1, 3, 32, 32)
    ).shape == (1, 4)
    sys.modules.pop("sized_models", None)
