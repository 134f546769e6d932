"""What Torch-Pruning needs beyond a model's layers, and its failures as clear errors.

- **Attention heads.** A module with a ``qkv`` Linear and an integer ``num_heads`` (timm's
  ``Attention`` in ViT, DeiT and their kin) reshapes the ``qkv`` output into heads; Torch-Pruning
  keeps the heads consistent only when it is told their number (:func:`attention_heads`), and
  the module's ``head_dim`` (and ``attn_dim``) must follow the pruned widths
  (:func:`sync_attention`).
- **Graphs it cannot follow.** Building the dependency graph fails on some models (ShuffleNet's
  channel shuffle): :func:`build_pruner` turns that into a :class:`UserError` naming the layer.
- **Models broken by pruning.** A ``forward()`` that relies on a channel count pruning changed
  fails afterwards: :func:`check_runs` runs the model once and names the module that failed.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import torch
from torch import Tensor, nn

from robust_compress.errors import UserError, first_line


def attention_heads(model: nn.Module) -> dict[nn.Module, int]:
    """Return ``{qkv Linear: number of heads}`` of the model's attention modules."""
    return {
        m.qkv: m.num_heads
        for m in model.modules()
        if isinstance(getattr(m, "qkv", None), nn.Linear) and isinstance(m.num_heads, int)
    }


def sync_attention(model: nn.Module) -> None:
    """Bring each attention module's ``head_dim`` and ``attn_dim`` in line with its ``qkv``."""
    for m in model.modules():
        qkv = getattr(m, "qkv", None)
        if not isinstance(qkv, nn.Linear) or not isinstance(getattr(m, "num_heads", None), int):
            continue
        head_dim = qkv.out_features // (3 * m.num_heads)
        if isinstance(getattr(m, "head_dim", None), int):
            m.head_dim = head_dim
        if isinstance(getattr(m, "attn_dim", None), int):
            m.attn_dim = head_dim * m.num_heads


def build_pruner(cls: type, model: nn.Module, example_inputs: Tensor, **kwargs: Any) -> Any:
    """Build Torch-Pruning's pruner ``cls``; a failure to trace the model is a UserError.

    Raises:
        UserError: Torch-Pruning cannot build the model's dependency graph; the message names
            the layer nearest to where it failed and what to change.
    """
    try:
        return cls(model, example_inputs, **kwargs)
    except UserError:
        raise
    except Exception as exc:
        layer = _failing_layer(exc, model)
        where = f" at the {layer}" if layer else ""
        raise UserError(
            f"Torch-Pruning cannot follow the graph of {type(model).__name__}{where} "
            f"({type(exc).__name__}: {first_line(exc)}). Structured pruning needs every "
            "reshape of channels to be traceable (a channel shuffle is not): remove the prune "
            "stage for this model, or choose another model."
        ) from None


def _failing_layer(exc: BaseException, model: nn.Module) -> str | None:
    """The layer feeding the graph node Torch-Pruning failed on (from the traceback)."""
    names = {m: n for n, m in model.named_modules() if n}
    node = None
    tb = exc.__traceback__
    while tb is not None:
        for key in ("reshape_node", "cat_node", "node"):
            if hasattr(tb.tb_frame.f_locals.get(key), "inputs"):
                node = tb.tb_frame.f_locals[key]
        tb = tb.tb_next
    if node is None:
        return None
    kind = type(getattr(node, "module", None)).__name__.strip("_").removesuffix("Op").lower()
    seen, queue = set(), deque([node])
    while queue and len(seen) < 200:
        current = queue.popleft()
        if getattr(current, "module", None) in names:
            return f"{kind or 'op'} after layer {names[current.module]}"
        seen.add(id(current))
        queue.extend(n for n in current.inputs if id(n) not in seen)
    return None


def check_runs(model: nn.Module, example_inputs: Tensor) -> None:
    """Run the pruned model once (eval, no grad; modes restored).

    Raises:
        UserError: The model fails; the message names the innermost module that was running.
    """
    names = {m: n for n, m in model.named_modules()}
    stack: list[nn.Module] = []

    def enter(module: nn.Module, _inputs: Any) -> None:
        stack.append(module)

    def leave(_module: nn.Module, _inputs: Any, _output: Any) -> None:
        stack.pop()  # a hook that returned something would replace the module's output

    hooks = [m.register_forward_pre_hook(enter) for m in names]
    hooks += [m.register_forward_hook(leave) for m in names]
    modes = {m: m.training for m in names}
    model.eval()
    try:
        with torch.no_grad():
            model(example_inputs)
    except Exception as exc:
        where = names[stack[-1]] if stack and names[stack[-1]] else ""
        kind = type(stack[-1]).__name__ if stack else type(model).__name__
        keep = f"prune.ignore: [{where}]" if where else "prune.ignore"
        raise UserError(
            f"after pruning, {type(model).__name__} fails in {where or 'its forward()'} "
            f"({kind}: {first_line(exc)}). Its forward() relies on a channel count that "
            f"structured pruning changed: keep those channels with {keep} (or a re: "
            "pattern), or choose another model."
        ) from None
    finally:
        for h in hooks:
            h.remove()
        for m, mode in modes.items():
            m.training = mode


def group_roots(pruner: Any, model: nn.Module) -> list[dict[str, Any]]:
    """The groups Torch-Pruning prunes together, each named by its root layer.

    Returns:
        ``[{"name", "channels", "members"}]``: the root layer's name, its output channels,
        and every layer whose output channels the group removes with it.
    """
    names = {m: n for n, m in model.named_modules()}
    graph = pruner.DG
    found = []
    for group in graph.get_all_groups(
        ignored_layers=pruner.ignored_layers, root_module_types=pruner.root_module_types
    ):
        root = group[0].dep.target.module
        members = {
            names[dep.target.module]
            for dep, _ in group
            if dep.target.module in names and graph.is_out_channel_pruning_fn(dep.handler)
        }
        channels = graph.get_out_channels(root)
        found.append({"name": names[root], "channels": channels, "members": sorted(members)})
    return found


def ratio_dict(model: nn.Module, layer_ratios: dict[str, float] | None) -> dict | None:
    """Torch-Pruning's ``pruning_ratio_dict`` for ratios given by layer name.

    Raises:
        UserError: A name is not a layer of the model.
    """
    if not layer_ratios:
        return None
    modules = dict(model.named_modules())
    for name in layer_ratios:
        if name not in modules:
            from robust_compress.errors import suggest

            raise UserError(f"no layer {name!r} to prune." + suggest(name, list(modules)))
    return {modules[name]: float(ratio) for name, ratio in layer_ratios.items()}
