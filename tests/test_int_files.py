"""Integer ONNX files that give the same answers on every CPU, and real 4-bit files.

None of these tests depends on the test machine's CPU: the AVX2 arithmetic is emulated in
numpy (``saturating_dot``) and checked against the weights of every integer kernel that ONNX
Runtime builds from the file.
"""

import numpy as np
import onnx
import pytest
import torch

from robust_compress.adapters.brevitas.quantizer import BrevitasQuantizer
from robust_compress.adapters.onnxruntime import saturation as ort_saturation
from robust_compress.adapters.onnxruntime.runtime import optimized_op_types, top1_agreement
from robust_compress.errors import CheckpointError, UserError

INTEGER_KERNELS = 5  # cnn_small: three QLinearConv, two QGemm


def _export(model, data, path, **kwargs):
    quantizer = BrevitasQuantizer(calib_batches=2, **kwargs)
    qmodel = quantizer.prepare(model, data.batches(32))
    return qmodel, quantizer.export_with_report(qmodel, path, data.x[:1])


@pytest.fixture(scope="module")
def safe_file(trained_small, synthetic_train, tmp_path_factory):
    return _export(trained_small, synthetic_train, tmp_path_factory.mktemp("q") / "w8.onnx")


@pytest.fixture(scope="module")
def full_range_file(trained_small, synthetic_train, tmp_path_factory):
    path = tmp_path_factory.mktemp("q") / "w8-full.onnx"
    return _export(trained_small, synthetic_train, path, vnni_only_full_range=True)


def test_saturating_dot_is_exact_within_the_bound():
    rng = np.random.default_rng(1)
    bound = ort_saturation.SAFE_WEIGHT_MAX
    assert bound == 64
    w = rng.integers(-bound, bound + 1, (16, 37))
    w[0], w[1] = bound, -bound  # the extreme rows
    a = np.concatenate([np.full((1, 37), 255), rng.integers(0, 256, (31, 37))])
    assert np.array_equal(ort_saturation.saturating_dot(a, w), a @ w.T)


def test_saturating_dot_overflows_just_past_the_bound():
    a = np.full((1, 2), 255)
    w = np.full((1, 2), ort_saturation.SAFE_WEIGHT_MAX + 1)
    assert ort_saturation.saturating_dot(a, w)[0, 0] == 32767 != (a @ w.T)[0, 0]
    w127 = np.array([[127, 127, -127, -127]])
    assert ort_saturation.saturating_dot(np.full((1, 4), 255), w127)[0, 0] == 32767 - 32768


def test_default_int8_file_is_within_the_bound_on_every_kernel(safe_file):
    _, report = safe_file
    kernels = report["kernels"]
    assert len(kernels) == INTEGER_KERNELS
    assert report["saturation_safe"]
    assert all(k["weight_dtype"] == "int8" and k["max_abs_weight"] <= 63 for k in kernels)
    assert ort_saturation.emulated_saturation_errors(report["path"]) == 0


def test_full_range_file_breaks_the_bound_and_needs_the_vnni_setting(
    full_range_file, synthetic_test, tmp_path
):
    qmodel, report = full_range_file
    assert not report["saturation_safe"]
    assert max(k["max_abs_weight"] for k in report["kernels"]) == 127
    assert ort_saturation.emulated_saturation_errors(report["path"]) > 0  # AVX2 gets some wrong
    target = tmp_path / "refused.onnx"
    with pytest.raises(UserError, match="vnni_only_full_range"):
        BrevitasQuantizer().export(qmodel, target, synthetic_test.x[:1])
    assert list(tmp_path.iterdir()) == []  # neither the file nor a partial one is left


def test_int8_file_agrees_with_its_twin_and_uses_integer_kernels(safe_file, synthetic_test):
    qmodel, report = safe_file
    ops = optimized_op_types(report["path"])
    assert ops["QLinearConv"] == 3 and ops["Conv"] == 0
    assert top1_agreement(qmodel, report["path"], synthetic_test.x) >= 0.99


def test_int8_grid_is_seven_bits_unless_full_range():
    assert BrevitasQuantizer().grid_bits == 7
    assert BrevitasQuantizer(vnni_only_full_range=True).grid_bits == 8
    assert BrevitasQuantizer(weight_bits=4).grid_bits == 4


@pytest.mark.parametrize("bits", [4, 2])
def test_low_bit_file_stores_int4_and_is_smaller(
    bits, trained_small, synthetic_train, synthetic_test, safe_file, tmp_path
):
    qmodel, report = _export(trained_small, synthetic_train, tmp_path / "w.onnx", weight_bits=bits)
    path = report["path"]
    graph = onnx.load(path).graph
    types = {init.data_type for init in graph.initializer}
    assert onnx.TensorProto.INT4 in types
    weights = [e for e in report["weight_storage"] if "weight" in e["name"]]
    assert len(weights) == INTEGER_KERNELS and all(e["storage"] == "int4" for e in weights)
    biases = [e for e in report["weight_storage"] if "bias" in e["name"]]
    assert biases and all(e["storage"] == "int32" and e["reason"] for e in biases)
    assert _size(path) <= 0.6 * _size(safe_file[1]["path"])
    assert report["bytes_int8_container"] > _size(path)
    assert top1_agreement(qmodel, path, synthetic_test.x) >= 0.99


def test_low_bit_weights_stay_in_int8_containers_on_request(
    trained_small, synthetic_train, synthetic_test, tmp_path
):
    path = tmp_path / "w4.onnx"
    qmodel, report = _export(
        trained_small, synthetic_train, path, weight_bits=4, per_channel=False, pack_low_bits=False
    )
    assert report["weight_storage"] == []
    ops = optimized_op_types(path)
    assert ops["QLinearConv"] == 3 and ops["Conv"] == 0
    assert top1_agreement(qmodel, path, synthetic_test.x) >= 0.99


def test_audit_fails_when_the_file_disagrees_with_its_twin(
    safe_file, synthetic_train, synthetic_test
):
    from robust_compress.audit.runner import run_audit
    from robust_compress.models.specs import build_model

    qmodel, report = safe_file
    options = {"eps": 0.05, "attacks": ["fgsm"], "samples": 64, "sanity_checks": False}
    good = run_audit(qmodel, synthetic_test, deployed_file=report["path"], **options)
    (check,) = good["checks"]
    assert check["name"] == "twin_agreement" and check["passed"] and good["passed"]
    assert check["agreement"] >= 0.99 and check["samples"] == 64
    assert check["file_clean"] == pytest.approx(check["twin_clean"], abs=0.02)
    assert "top-1 agreement" in good["markdown"]
    untrained = BrevitasQuantizer(calib_batches=1).prepare(
        build_model("builtin:cnn_small"), synthetic_train.batches(32)
    )
    bad = run_audit(untrained, synthetic_test, deployed_file=report["path"], **options)
    (check,) = bad["checks"]
    expected = _agreement(untrained, qmodel, synthetic_test.x[:64])
    assert check["agreement"] == pytest.approx(expected, abs=0.02) and expected < 0.9
    assert not check["passed"] and not bad["passed"]
    assert "FAILED" in bad["markdown"]


def test_checkpoint_quantized_before_the_safe_grid_is_refused():
    from robust_compress.engine.state import _refuse_full_range_int8

    with pytest.raises(CheckpointError, match="older robust-compress"):
        _refuse_full_range_int8({"weight_bits": 8, "act_bits": 8})
    _refuse_full_range_int8({"weight_bits": 8, "vnni_only_full_range": False})
    _refuse_full_range_int8({"weight_bits": 4, "act_bits": 8})  # its grid did not change


def _size(path) -> int:
    from pathlib import Path

    return Path(path).stat().st_size


def _agreement(model_a, model_b, x) -> float:
    with torch.no_grad():
        return float((model_a.eval()(x).argmax(1) == model_b.eval()(x).argmax(1)).float().mean())


def _clip_graph(tmp_path, values, second_reader: bool):
    """input -> Mul(DQ(Clip(int8 constant))) [-> and an Identity of the clipped values]."""
    from onnx import TensorProto, helper

    inits = [
        helper.make_tensor("w", TensorProto.INT8, (len(values),), values),
        helper.make_tensor("lo", TensorProto.INT8, (), [-7]),
        helper.make_tensor("hi", TensorProto.INT8, (), [7]),
        helper.make_tensor("s", TensorProto.FLOAT, (), [0.5]),
        helper.make_tensor("z", TensorProto.INT8, (), [0]),
    ]
    nodes = [
        helper.make_node("Clip", ["w", "lo", "hi"], ["wc"], name="clip"),
        helper.make_node("DequantizeLinear", ["wc", "s", "z"], ["wf"], name="dq"),
        helper.make_node("Mul", ["input", "wf"], ["logits"], name="mul"),
    ]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, (len(values),))]
    if second_reader:
        nodes.append(helper.make_node("Identity", ["wc"], ["raw"], name="other"))
        outputs.append(helper.make_tensor_value_info("raw", TensorProto.INT8, (len(values),)))
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, (len(values),))],
        outputs,
        inits,
    )
    path = tmp_path / "clip.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


@pytest.mark.parametrize("second_reader", [False, True])
def test_packing_applies_the_clip_and_keeps_a_shared_one(tmp_path, second_reader):
    from onnx import numpy_helper

    from robust_compress.adapters.onnxruntime.lowbit import pack_low_bit_weights

    path = _clip_graph(tmp_path, [-8, 7, 3], second_reader)
    (entry,) = pack_low_bit_weights(path)
    assert entry.storage == "int4"
    model = onnx.load(path)
    assert model.opset_import[0].version == 21 and model.ir_version >= 10
    packed = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}["w_int4"]
    assert packed.tolist() == [-7, 7, 3]  # the Clip's bounds were applied before packing
    ops = [n.op_type for n in model.graph.node]
    assert ("Clip" in ops) == second_reader
    onnx.checker.check_model(model, full_check=True)
