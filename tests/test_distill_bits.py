"""Robust distillation as a fine-tuning loss, and per-layer weight bits (issue 17)."""

import copy

import pytest
import torch
import torch.nn.functional as F

from robust_compress.adapters.brevitas.quantizer import BrevitasQuantizer
from robust_compress.engine.session import Session
from robust_compress.errors import UserError
from robust_compress.models.specs import build_model
from robust_compress.recipe.loader import parse_recipe
from robust_compress.search.weight_quant import quantize_weight
from robust_compress.training.distill import Distill


class Shift:
    """A deterministic adversary: every pixel moved by ``step`` along the gradient's sign."""

    def __init__(self, step: float):
        self.step = step

    def perturb(self, model, x, y):
        if self.step == 0:
            return x
        x = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(model(x), y), x)
        return (x + self.step * grad.sign()).clamp(0, 1).detach()


@pytest.fixture
def pair():
    torch.manual_seed(0)
    student = build_model("builtin:cnn_tiny", 10, 1, input_size=(28, 28)).eval()
    return student, copy.deepcopy(student), torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))


def test_weight_zero_is_plain_adversarial_cross_entropy(pair):
    student, teacher, x, y = pair
    loss = Distill(Shift(0.1), teacher, weight=0.0).loss(student, x, y)
    expected = F.cross_entropy(student(Shift(0.1).perturb(student, x, y)), y)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_a_student_equal_to_its_teacher_on_clean_inputs_has_no_kl(pair):
    student, teacher, x, y = pair
    clean = Distill(Shift(0.0), teacher, weight=1.0, temperature=2.0).loss(student, x, y)
    attacked = Distill(Shift(0.3), teacher, weight=1.0, temperature=2.0).loss(student, x, y)
    assert clean.abs() < 1e-7 and attacked > 1e-6  # the KL term sees the adversarial outputs


def test_only_the_student_learns(pair):
    student, teacher, x, y = pair
    Distill(Shift(0.1), teacher, weight=0.5).loss(student, x, y).backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert all(p.grad is not None for p in student.parameters())


def test_a_prune_stage_with_distill_fine_tunes_against_the_dense_model():
    recipe = parse_recipe("""
name: d
model: {spec: builtin:cnn_tiny}
data: {name: synthetic, batch_size: 32, train_subset: 64, test_subset: 32}
threat: {norm: linf, eps: 0.1}
stages:
  - prune: {ratio: 0.5, finetune_epochs: 1, adversary: {attack: fgsm_rs},
            distill: {weight: 0.7, temperature: 2}}
""")
    session = Session(recipe)
    session.setup()
    dense_params = sum(p.numel() for p in session.model.parameters())
    report = session.run()
    assert report["models"]["dense"]["params"] == dense_params  # a recipe that starts pruning
    assert report["metrics"]["dense"]["clean"] is not None  # its dense model was measured
    loss = session.adversary_for(0)
    assert isinstance(loss, Distill) and (loss.weight, loss.temperature) == (0.7, 2.0)
    assert sum(p.numel() for p in loss.teacher.parameters()) == dense_params
    assert sum(p.numel() for p in session.model.parameters()) < dense_params


def test_layer_bits_give_single_layers_their_own_grid(trained_small, synthetic_train, tmp_path):
    quantizer = BrevitasQuantizer(calib_batches=2, layer_bits={"features.3": 4, "fc": 2})
    qmodel = quantizer.prepare(trained_small, synthetic_train.batches(32))
    widths = {
        n: int(m.quant_weight().bit_width)
        for n, m in qmodel.named_modules()
        if hasattr(m, "quant_weight")
    }
    assert widths["features.3"] == 4 and widths["fc"] == 2 and widths["features.0"] == 7
    levels = dict(qmodel.named_modules())["fc"].quant_weight().int().unique().tolist()
    assert set(levels) <= {-1, 0, 1}
    report = quantizer.export_with_report(qmodel, tmp_path / "m.onnx", synthetic_train.x[:2])
    storage = {
        w["name"].split("/")[1]: w["storage"]
        for w in report["weight_storage"]
        if "weight_quant" in w["name"]
    }
    assert storage["features.3"] == "int4" and storage["features.0"] == "int8"


def test_an_unknown_layer_in_layer_bits_names_the_layers(trained_small, synthetic_train):
    with pytest.raises(UserError, match="not a quantized layer.*features.0"):
        BrevitasQuantizer(layer_bits={"feature.3": 4}).prepare(
            trained_small, synthetic_train.batches(32)
        )


def test_torch_weight_rounding_matches_the_grid():
    layer = torch.nn.Conv2d(3, 4, 3)
    quantize_weight(layer, 2)
    per_channel = layer.weight.reshape(4, -1)
    for row in per_channel:
        assert len(torch.unique(row / row.abs().max())) <= 3  # {-1, 0, 1} x scale
