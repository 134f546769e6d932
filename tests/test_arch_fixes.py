"""What real architectures needed from the adapters (found by `make zoo`), on small stand-ins.

Each model here reproduces one pattern of a torchvision or timm architecture in a few layers:
attention heads (ViT, DeiT), a channel shuffle (ShuffleNet), tensor methods on quantized
tensors (timm's ConvNeXt and EfficientNet), a Linear on channels-last maps (torchvision's
ConvNeXt), a class token concatenated to patches (ViT), optional forward arguments (timm),
adaptive pooling to a larger grid (VGG on small images).
"""

import pytest
import torch
from torch import nn

from robust_compress.adapters.brevitas.calibration import calibrate
from robust_compress.adapters.brevitas.quantizer import BrevitasQuantizer
from robust_compress.adapters.onnxruntime.exportable import MatmulAdaptiveAvgPool2d
from robust_compress.adapters.onnxruntime.runtime import export_onnx, parity_max_abs, top1_agreement
from robust_compress.adapters.torch_pruning.pruner import (
    StructuredPruner,
    pruned_state,
    restore_pruned,
)
from robust_compress.errors import UserError


class Attention(nn.Module):
    """timm's Attention, reduced: qkv split into heads, attention, projection."""

    def __init__(self, dim: int = 32, num_heads: int = 4):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.attn_dim = num_heads * self.head_dim
        self.qkv = nn.Linear(dim, 3 * self.attn_dim)
        self.proj = nn.Linear(self.attn_dim, dim)

    def forward(self, x):
        b, n, _ = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        x = (q @ k.transpose(-2, -1) * self.head_dim**-0.5).softmax(-1) @ v
        return self.proj(x.transpose(1, 2).reshape(b, n, self.attn_dim))


class TinyViT(nn.Module):
    """Patch embedding, a class token, one attention block and a head (ViT's pattern)."""

    def __init__(self, dim: int = 32, num_classes: int = 10):
        super().__init__()
        self.patch = nn.Conv2d(3, dim, 8, stride=8)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.norm = nn.LayerNorm(dim)
        self.attn = Attention(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x, attn_mask=None):
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = x + self.attn(self.norm(x))
        return self.head(x[:, 0])


def test_attention_heads_stay_consistent_when_pruned_and_restored():
    model, x = TinyViT(), torch.rand(2, 3, 32, 32)
    pruner = StructuredPruner("l1", ratio=0.25)
    pruner.prepare(model, x[:1])
    assert pruner.step()
    attn = model.attn
    assert attn.qkv.out_features < 96 and attn.head_dim * attn.num_heads == attn.attn_dim
    assert attn.qkv.out_features == 3 * attn.attn_dim
    restored = restore_pruned(TinyViT(), pruned_state(model))
    assert torch.allclose(model.eval()(x), restored.eval()(x), atol=1e-6)


class FixedWidth(nn.Module):
    """A forward() that hard-codes its channel count (pruning cannot see it)."""

    def forward(self, x):
        return x * torch.ones(8, 1, 1)


def test_a_model_broken_by_pruning_names_the_module():
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.ReLU(), FixedWidth(), nn.Conv2d(8, 8, 3), nn.Flatten()
    )
    model.append(nn.Linear(8 * 4 * 4, 10))
    pruner = StructuredPruner("l1", ratio=0.5)
    pruner.prepare(model, torch.rand(1, 3, 8, 8))
    with pytest.raises(UserError, match=r"fails in 2 .*prune\.ignore: \[2\]"):
        pruner.step()


def test_a_graph_torch_pruning_cannot_follow_is_a_clear_error():
    from torchvision.models import shufflenet_v2_x0_5

    pruner = StructuredPruner("l1", ratio=0.3)
    with pytest.raises(UserError, match="cannot follow the graph of ShuffleNetV2 at the reshape"):
        pruner.prepare(shufflenet_v2_x0_5(num_classes=10), torch.rand(1, 3, 32, 32))


class LayerScaled(nn.Module):
    """timm's ConvNeXt block, reduced: a Linear on channels-last maps, ``x.mul(gamma)``."""

    def __init__(self, c: int = 8):
        super().__init__()
        self.conv = nn.Conv2d(3, c, 3, padding=1)
        self.fc = nn.Linear(c, c)
        self.gamma = nn.Parameter(torch.full((c,), 0.5))
        self.head = nn.Linear(c, 10)

    def forward(self, x):
        x = self.conv(x).relu()
        x = x + self.fc(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2).mul(
            self.gamma.reshape(1, -1, 1, 1)
        )
        torch._assert(x.ndim == 4, "expected (N, C, H, W)")
        return self.head(x.mean((2, 3)))


@pytest.mark.parametrize("model", [LayerScaled(), TinyViT()], ids=["convnext", "vit"])
def test_brevitas_quantizes_calibrates_and_exports_real_patterns(model, tmp_path):
    x = torch.rand(16, 3, 32, 32)
    quantizer = BrevitasQuantizer(calib_batches=2)
    qmodel = quantizer.prepare(model.eval(), [x[:8], x[8:]])
    assert qmodel(x).shape == (16, 10)
    path = quantizer.export(qmodel, tmp_path / "m.int8.onnx", x[:1])
    assert top1_agreement(qmodel, path, x) >= 0.9


def test_a_forward_argument_without_default_is_refused():
    class TwoInputs(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x, scale):
            return self.fc(x) * scale

    with pytest.raises(UserError, match="argument 'scale' without a default"):
        BrevitasQuantizer(calib_batches=1).prepare(TwoInputs(), [torch.rand(2, 4)])


def test_calibration_failure_is_a_clear_error():
    class Broken(nn.Module):
        def forward(self, x):
            raise RuntimeError("no kernel for this")

    with pytest.raises(UserError, match="fails in its calibration .*no kernel for this"):
        calibrate(Broken(), [torch.rand(1, 3)], True, "Broken")


@pytest.mark.parametrize(("size", "out"), [((1, 1), (7, 7)), ((2, 3), (7, 5)), ((5, 5), (3, 3))])
def test_matmul_pool_equals_adaptive_pool(size, out):
    x = torch.rand(2, 4, *size)
    expected = nn.AdaptiveAvgPool2d(out)(x)
    assert torch.allclose(MatmulAdaptiveAvgPool2d(size, out)(x), expected, atol=1e-6)


def test_vgg_style_pool_exports_in_fp32_and_int8(tmp_path):
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(16), nn.AdaptiveAvgPool2d(7)
    )
    model.extend([nn.Flatten(), nn.Linear(8 * 49, 10)])
    pool = model[3]
    x = torch.rand(8, 3, 32, 32)
    path = export_onnx(model, tmp_path / "m.onnx", x[:1])
    assert parity_max_abs(model, path, x) < 1e-5
    assert model[3] is pool  # the original layer is back
    quantizer = BrevitasQuantizer(calib_batches=1)
    qmodel = quantizer.prepare(model.eval(), [x])
    int8 = quantizer.export(qmodel, tmp_path / "m.int8.onnx", x[:1])
    assert top1_agreement(qmodel, int8, x) >= 0.9


def test_an_operation_onnx_cannot_express_is_a_clear_error(tmp_path):
    class Histogram(nn.Module):
        def forward(self, x):
            return torch.histc(x, 4).expand(x.shape[0], 4)

    with pytest.raises(UserError, match="torch cannot export Histogram to ONNX .*aten::histc"):
        export_onnx(Histogram(), tmp_path / "m.onnx", torch.rand(1, 3, 4, 4))
