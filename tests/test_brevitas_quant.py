import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robust_compress.adapters.brevitas.quantizer import BrevitasQuantizer
from robust_compress.adapters.onnxruntime.runtime import optimized_op_types, top1_agreement
from robust_compress.attacks.torch_attacks import pgd_linf
from robust_compress.errors import UserError
from robust_compress.protocols import Quantizer

INTEGER_MATMULS = {"QGemm", "QLinearMatMul", "MatMulInteger"}


@pytest.fixture(scope="module")
def quantized(trained_small, synthetic_train):
    quantizer = BrevitasQuantizer(calib_batches=4)
    return quantizer, quantizer.prepare(trained_small, synthetic_train.batches(32))


@pytest.fixture(scope="module")
def int8_onnx(quantized, synthetic_test, tmp_path_factory):
    quantizer, qmodel = quantized
    return quantizer.export(qmodel, tmp_path_factory.mktemp("q") / "m.onnx", synthetic_test.x[:2])


def test_satisfies_quantizer_protocol():
    assert isinstance(BrevitasQuantizer(), Quantizer)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"weight_bits": 1},
        {"weight_bits": 9},
        {"weight_bits": 8.0},
        {"weight_bits": True},
        {"act_bits": 0},
        {"act_bits": 16},
        {"calib_batches": 0},
    ],
)
def test_bad_settings_raise_user_error(kwargs):
    with pytest.raises(UserError, match=next(iter(kwargs))):
        BrevitasQuantizer(**kwargs)


def test_weight_bits_two_to_eight_accepted():
    for bits in range(2, 9):
        assert BrevitasQuantizer(weight_bits=bits).weight_bits == bits


def test_prepare_leaves_input_model_untouched(trained_small, synthetic_train):
    model = copy.deepcopy(trained_small).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    qmodel = BrevitasQuantizer(calib_batches=1).prepare(model, [synthetic_train.x[:16]])
    assert qmodel is not model
    assert model.training and qmodel.training  # mode of the input is kept and copied
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert all(p.grad is None for p in model.parameters())


def test_prepared_model_is_fake_quant_with_folded_batchnorm(
    quantized, trained_small, synthetic_test
):
    _, qmodel = quantized
    assert not any(isinstance(m, nn.BatchNorm2d) for m in qmodel.modules())
    quant_layers = [
        m for m in qmodel.modules() if type(m).__name__ in ("QuantConv2d", "QuantLinear")
    ]
    assert len(quant_layers) == 5
    x = synthetic_test.x
    with torch.no_grad():
        q_logits, f_logits = qmodel.eval()(x), trained_small(x)
    assert not torch.equal(q_logits, f_logits)  # quantization changes the numbers
    assert (q_logits.argmax(1) == f_logits.argmax(1)).float().mean() >= 0.95


def test_input_gradient_flows_straight_through(quantized, synthetic_test):
    _, qmodel = quantized
    x, y = synthetic_test.x[:16].clone().requires_grad_(True), synthetic_test.y[:16]
    for mode in (True, False):
        qmodel.train(mode)
        (grad,) = torch.autograd.grad(F.cross_entropy(qmodel(x), y), x)
        assert torch.isfinite(grad).all()
        assert grad.abs().sum() > 0
    qmodel.eval()


def test_pgd_attacks_fake_quant_model(quantized, synthetic_test):
    _, qmodel = quantized
    qmodel.eval()
    x, y = synthetic_test.x[:32], synthetic_test.y[:32]
    x_adv = pgd_linf(qmodel, x, y, eps=0.3, step=0.1, steps=3)
    with torch.no_grad():
        clean = (qmodel(x).argmax(1) == y).float().mean()
        robust = (qmodel(x_adv).argmax(1) == y).float().mean()
    assert robust < clean - 0.2


def test_qat_step_updates_weights(quantized, synthetic_train):
    _, qmodel = quantized
    model = copy.deepcopy(qmodel).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = synthetic_train.x[:32], synthetic_train.y[:32]
    weight = model.fc.weight.detach().clone()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    assert not torch.equal(weight, model.fc.weight)


def test_int8_onnx_fuses_into_integer_kernels(int8_onnx):
    ops = optimized_op_types(int8_onnx)
    assert ops["QLinearConv"] == 3
    assert sum(ops[op] for op in INTEGER_MATMULS) == 2
    assert ops["Conv"] == 0 and ops["Gemm"] == 0 and ops["MatMul"] == 0


def test_int8_onnx_agrees_with_fake_quant_model(
    quantized, int8_onnx, synthetic_train, synthetic_test
):
    _, qmodel = quantized
    x = torch.cat([synthetic_test.x, synthetic_train.x[:256]])
    assert len(x) == 512
    assert top1_agreement(qmodel, int8_onnx, x) >= 0.99


def test_export_leaves_model_untouched(quantized, synthetic_test, tmp_path):
    quantizer, qmodel = quantized
    qmodel.train()
    before = {k: v.clone() for k, v in qmodel.state_dict().items()}
    quantizer.export(qmodel, tmp_path / "sub" / "m.onnx", synthetic_test.x[:1])
    assert (tmp_path / "sub" / "m.onnx").is_file()
    assert qmodel.training
    after = qmodel.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    qmodel.eval()


def test_calibration_accepts_tensors_and_pairs_and_rejects_empty(trained_small, synthetic_train):
    quantizer = BrevitasQuantizer(calib_batches=1, bias_correction=False)
    x, y = synthetic_train.x[:8], synthetic_train.y[:8]
    assert quantizer.prepare(trained_small, [x]) is not None
    assert quantizer.prepare(trained_small, [(x, y)]) is not None
    with pytest.raises(UserError, match="empty"):
        quantizer.prepare(trained_small, [])
    with pytest.raises(UserError, match="tensors"):
        quantizer.prepare(trained_small, ["not a tensor"])


class _Untraceable(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        if x.sum() > 0:  # data-dependent control flow: torch.fx cannot trace it
            return self.fc(x)
        return -self.fc(x)


def test_untraceable_model_raises_user_error():
    with pytest.raises(UserError, match="torch.fx"):
        BrevitasQuantizer(calib_batches=1).prepare(_Untraceable(), [torch.rand(2, 4)])
