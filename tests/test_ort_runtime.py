import copy
import importlib.util

import pytest
import torch

from robust_compress.adapters.onnxruntime.runtime import (
    OrtPredictor,
    export_onnx,
    optimized_op_types,
    parity_max_abs,
    top1_agreement,
)
from robust_compress.adapters.onnxruntime.timing import (
    measure_latency,
    node_times,
    runtime_versions,
)
from robust_compress.errors import UserError


@pytest.fixture(scope="module")
def fp32_onnx(trained_small, synthetic_test, tmp_path_factory):
    return export_onnx(
        trained_small, tmp_path_factory.mktemp("fp") / "m.onnx", synthetic_test.x[:3]
    )


def test_fp32_export_matches_torch(trained_small, fp32_onnx, synthetic_test):
    x = synthetic_test.x
    assert parity_max_abs(trained_small, fp32_onnx, x) < 1e-4
    assert top1_agreement(trained_small, fp32_onnx, x) == 1.0


@pytest.mark.parametrize("batch", [1, 7])
def test_dynamic_batch_and_shapes(trained_small, fp32_onnx, synthetic_test, batch):
    predictor = OrtPredictor(fp32_onnx)
    assert predictor.input_shape == (1, 28, 28)
    assert predictor.fixed_batch is None
    x = synthetic_test.x[:batch]
    out = predictor(x)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    assert out.shape == (batch, 10)
    with torch.no_grad():
        assert torch.allclose(out, trained_small(x), atol=1e-4)


def test_fixed_batch_graph_takes_any_batch(trained_small, synthetic_test, tmp_path):
    path = export_onnx(
        trained_small, tmp_path / "fixed.onnx", synthetic_test.x[:4], dynamic_batch=False
    )
    predictor = OrtPredictor(path)
    assert predictor.fixed_batch == 4
    assert predictor(synthetic_test.x[:9]).shape == (9, 10)
    assert parity_max_abs(trained_small, path, synthetic_test.x[:9]) < 1e-4


def test_export_restores_train_mode(trained_small, synthetic_test, tmp_path):
    model = copy.deepcopy(trained_small).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    export_onnx(model, tmp_path / "a" / "m.onnx", synthetic_test.x[:1])
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_predictor_errors(fp32_onnx, tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        OrtPredictor(tmp_path / "missing.onnx")
    with pytest.raises(UserError, match="threads"):
        OrtPredictor(fp32_onnx, threads=0)
    with pytest.raises(UserError, match="does not fit"):
        OrtPredictor(fp32_onnx)(torch.rand(2, 3, 28, 28))
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx file")
    with pytest.raises(UserError, match="cannot load"):
        OrtPredictor(bad)


def test_optimized_op_types_of_fp32_graph_are_float(fp32_onnx, tmp_path):
    ops = optimized_op_types(fp32_onnx)
    assert sum(ops.values()) > 0
    assert ops["QLinearConv"] == 0 and ops["QGemm"] == 0
    assert ops["Conv"] + ops["FusedConv"] >= 3
    saved = tmp_path / "opt.onnx"
    OrtPredictor(fp32_onnx, optimized_model_path=saved)
    assert saved.is_file()


def test_measure_latency_reports_each_model_and_batch(fp32_onnx):
    res = measure_latency({"a": fp32_onnx, "b": fp32_onnx}, batch_sizes=(1, 4), warmup=1, iters=5)
    assert set(res) == {"a", "b"}
    for name in res:
        assert set(res[name]) == {1, 4}
        for stats in res[name].values():
            assert stats["iters"] == 5
            assert 0 < stats["median_ms"] <= stats["p90_ms"]
    with pytest.raises(UserError):
        measure_latency({}, iters=1)


def test_node_times_cover_the_optimized_graph(fp32_onnx):
    rows = node_times(fp32_onnx, batch=2, runs=5)
    assert sum(optimized_op_types(fp32_onnx).values()) == len(rows)
    assert all(r["median_us"] >= 0 and r["op"] for r in rows)
    assert set(runtime_versions()) == {"onnxruntime", "onnx"}


@pytest.mark.skipif(
    importlib.util.find_spec("robust_compress.adapters.torch_pruning.pruner") is None,
    reason="the Torch-Pruning adapter is not there yet",
)
def test_pruned_model_exports_fp32_and_int8(
    trained_small, synthetic_train, synthetic_test, tmp_path
):
    from robust_compress.adapters.brevitas.quantizer import BrevitasQuantizer
    from robust_compress.adapters.torch_pruning.pruner import StructuredPruner

    model = copy.deepcopy(trained_small).eval()
    pruner = StructuredPruner(importance="l1", ratio=0.5)
    pruner.prepare(model, synthetic_test.x[:1])
    pruner.step()
    assert model.features[0].out_channels < trained_small.features[0].out_channels
    x = synthetic_test.x
    fp32 = export_onnx(model, tmp_path / "pruned.onnx", x[:1])
    assert parity_max_abs(model, fp32, x) < 1e-4
    quantizer = BrevitasQuantizer(calib_batches=2)
    qmodel = quantizer.prepare(model, synthetic_train.batches(32))
    int8 = quantizer.export(qmodel, tmp_path / "pruned_int8.onnx", x[:1])
    assert optimized_op_types(int8)["QLinearConv"] == 3
    assert top1_agreement(qmodel, int8, x) >= 0.99
