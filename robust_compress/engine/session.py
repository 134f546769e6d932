"""The engine: a :class:`Session` runs a recipe's stages in order, or serves a foreign loop.

Run a recipe::

    session = Session(load_recipe("recipes/quickstart.yaml"), out="runs/quickstart")
    report = session.run()

Or drive it from your own training loop (see docs/engine.md)::

    session = Session(recipe)
    model = session.setup(my_model)
    x_adv = session.adversarial_batch(x, y)       # the first train stage's adversary
    if session.pruning_step():                    # the first prune stage's pruner
        optimizer = rebuild(session.model)
    qmodel = session.quantize(calibration_batches)
"""

from __future__ import annotations

import copy
import functools
import logging
import time
from pathlib import Path

import torch
from torch import Tensor, nn

from robust_compress.attacks.factory import build_adversary
from robust_compress.data.datasets import StreamData, TensorData, open_splits
from robust_compress.devices import check_device_name, place, prepare
from robust_compress.engine import state as session_state
from robust_compress.engine.fit_check import check_model_fits
from robust_compress.engine.guard import check_alive
from robust_compress.engine.hooks import HookList, Hooks
from robust_compress.engine.runfolder import RunFolder
from robust_compress.errors import UserError
from robust_compress.models.normalize import with_input_normalization
from robust_compress.models.specs import build_model, load_weights
from robust_compress.stages.contract import Progress
from robust_compress.training import distributed
from robust_compress.training.distill import distilled
from robust_compress.training.trades import trades_for

log = logging.getLogger(__name__)
MAIN_ONLY = (
    "export",
    "audit",
    "sensitivity",
)  # under torchrun, rank 0 alone runs these (and measures)
MODEL_UNCHANGED = (
    "export",
    "audit",
    "sensitivity",
)  # stages that read the model and never change it


class Session:
    """One run of a recipe: the model, its data, and where the stages have got to.

    Args:
        recipe: A validated :class:`robust_compress.recipe.loader.Recipe`.
        out: The run folder (a path or :class:`RunFolder`); None keeps everything in memory.
        hooks: Lifecycle hooks (progress bars, logging, a user's callbacks).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``, instead of the recipe's ``device``.
    """

    def __init__(
        self,
        recipe,
        out: RunFolder | str | Path | None = None,
        hooks: Hooks | list[Hooks] | None = None,
        device: str | None = None,
    ):
        self.recipe = recipe
        self.device_name = check_device_name(device) if device else recipe.device
        self.device = torch.device("cpu")  # resolved by setup()
        self.amp_dtype: torch.dtype | None = None
        self.out = RunFolder(out) if isinstance(out, str | Path) else out
        self.hooks = (
            hooks
            if isinstance(hooks, HookList)
            else HookList(hooks if isinstance(hooks, list) else [hooks] if hooks else [])
        )
        self.model: nn.Module | None = None
        self.float_model: nn.Module | None = None  # the float twin once quantized
        self.quant_config: dict | None = None
        self.dense_state: dict | None = None
        self.stage_index = 0
        self.epoch = 0
        self.records: list[dict] = []
        self.progress = Progress()
        self.results: dict[str, dict] = {}  # report sections by name (StageResult)
        self.holdout: TensorData | StreamData | None = None
        self.train_data: TensorData | StreamData | None = None
        self.test_data: TensorData | StreamData | None = None
        self._pruner = None
        self._adversaries: dict[int, object] = {}
        self._examples: Tensor | None = None

    # ----- set-up ---------------------------------------------------------------------
    def setup(self, model: nn.Module | None = None) -> nn.Module:
        """Load the data and build (or adopt) the model; returns the model.

        Args:
            model: Use this model instead of the recipe's ``model.spec``.
        """
        torch.manual_seed(self.recipe.seed)
        self.device, self.amp_dtype = prepare(self.device_name, self.recipe.compute)
        self._load_data()
        if model is None:
            model = self._fresh_model(weights=True)
        self.model = self.place(model)
        check_model_fits(self, model)
        return model

    def place(self, model: nn.Module) -> nn.Module:
        """``model`` moved to the session's device (channels-last when the recipe asks)."""
        return place(model, self.device, self.recipe.compute.channels_last)

    def _load_data(self) -> None:
        self._examples = None
        splits = open_splits(self.recipe.data, self.device)
        self.train_data, self.test_data, self.holdout = splits

    @property
    def num_classes(self) -> int:
        """Number of classes of the dataset."""
        return self.train_data.num_classes

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Shape (C, H, W) of one input."""
        return self.train_data.input_shape

    def example(self, n: int = 1) -> Tensor:
        """The first ``n`` training images (a fixed example input), read once per session."""
        if self._examples is None or len(self._examples) < n:
            self._examples = self.train_data.head(max(n, 2)).x.to(self.device)
        return self._examples[:n].clone()

    # ----- running a recipe -----------------------------------------------------------
    def run(self, resume: bool = False) -> dict:
        """Run every stage not yet done, checkpointing as it goes; return the report.

        The recipe's trackers (``tracking:``) follow the run and log its report at the end.
        """
        from robust_compress.report.run_report import write_report
        from robust_compress.tracking.hooks import tracking

        if self.model is None:
            self.setup()
        if resume:
            session_state.restore_latest(self)
        with tracking(self, enabled=distributed.is_main()):
            self._run_stages()
            report = write_report(self)
            self.hooks.on_run_end(report)
        return report

    def _run_stages(self) -> None:
        from robust_compress.stages import STAGES

        stages = self.recipe.stages
        while self.stage_index < len(stages):
            stage = stages[self.stage_index]
            label = f"{self.stage_index}:{stage.kind}"
            start = time.perf_counter()
            seconds_before = self.progress.seconds
            if stage.kind in MAIN_ONLY and not distributed.is_main():
                log.debug("stage %s runs on rank 0 only", label)
            else:
                result = STAGES.get(stage.kind)(self, stage, label)
                if result is not None:
                    self.results[result.section] = result.data
                if stage.kind not in MODEL_UNCHANGED:
                    check_alive(self, label)
            if stage.kind in MODEL_UNCHANGED and self.records:  # same model: same figures
                record = {**self.records[-1], "name": label, "kind": stage.kind}
            else:
                record = distributed.on_main(functools.partial(self.measure, label, stage.kind))
            record["seconds"] = seconds_before + time.perf_counter() - start
            self.records.append(record)
            self.stage_index += 1
            self.epoch = 0
            self.progress = Progress()
            self.checkpoint(stage_done=True)
            distributed.barrier()
            self.hooks.on_stage_end(label, record)

    def checkpoint(self, optimizer=None, seconds: float = 0.0, stage_done: bool = False) -> None:
        """Save the state atomically (no-op without a folder); ``stage_done`` keeps a stage copy."""
        if self.out is not None:
            session_state.save(self, optimizer, seconds, stage_done)

    def measure(self, label: str, kind: str, model: nn.Module | None = None) -> dict:
        """Clean accuracy, quick PGD accuracy, parameters and MACs of the model (or ``model``)."""
        from robust_compress.engine.metrics import quick_metrics

        return {"name": label, "kind": kind, **quick_metrics(self, model)}

    # ----- pieces for stages and foreign loops ----------------------------------------
    def float_reference(self) -> nn.Module:
        """The float model: the model itself, or its float twin once quantized."""
        return self.float_model if self.float_model is not None else self.model

    def snapshot_dense(self) -> None:
        """Remember the model before its first compression stage (for the report's 'dense')."""
        if self.dense_state is None:
            from robust_compress.adapters.torch_pruning.pruner import pruned_state

            self.dense_state = pruned_state(self.float_reference())

    def dense_model(self) -> nn.Module:
        """Rebuild the dense snapshot as a model (the current model if none was taken)."""
        if self.dense_state is None:
            return copy.deepcopy(self.float_reference()).eval()
        return self.rebuild(self.dense_state)

    def rebuild(self, state: dict) -> nn.Module:
        """A model rebuilt from a ``pruned_state`` (architecture replayed, weights loaded)."""
        from robust_compress.adapters.torch_pruning.pruner import restore_pruned

        return restore_pruned(self._fresh_model(), state).eval()

    def _fresh_model(self, weights: bool = False) -> nn.Module:
        """The recipe's model, freshly built (with ``model.weights`` when ``weights``)."""
        c = self.recipe.model
        channels, height, width = self.input_shape
        model = build_model(c.spec, self.num_classes, channels, input_size=(height, width))
        if weights and c.weights:
            load_weights(model, c.weights)
        if c.normalize is not None:
            with_input_normalization(model, c.normalize.mean, c.normalize.std, channels)
        return self.place(model)

    def adversary_for(self, index: int, cfg=None):
        """The (cached) adversary of stage ``index``: its adversary block, or ``cfg``.

        A ``trades`` train stage gets its TRADES loss, a ``natural`` one None, a stage with
        ``distill`` the distillation loss around its adversary (the dense model teaches). The
        recipe resolved every adversary when it loaded, so no default is chosen here.
        """
        if index not in self._adversaries:
            stage = self.recipe.stages[index]
            cfg = cfg if cfg is not None else getattr(stage, "adversary", None)
            method = getattr(stage, "method", None) if stage.kind == "train" else None
            norm, seed = self.recipe.threat.norm, self.recipe.seed * 1000 + index
            if cfg is None or method == "natural":
                adversary = None
            elif method == "trades":
                adversary = trades_for(cfg, norm, stage.trades_beta)
            else:
                adversary = distilled(
                    stage, build_adversary(cfg, norm, seed), lambda: self.place(self.dense_model())
                )
            self._adversaries[index] = adversary
        return self._adversaries[index]

    def _first(self, kind: str) -> tuple[int, object]:
        for i, stage in enumerate(self.recipe.stages):
            if stage.kind == kind:
                return i, stage
        raise UserError(f"the recipe has no {kind} stage; add one to use this call.")

    def adversarial_batch(self, x: Tensor, y: Tensor, kind: str = "train") -> Tensor:
        """Adversarial examples for ``(x, y)`` from the first ``kind`` stage's adversary."""
        index, stage = self._first(kind)
        adversary = self.adversary_for(index)
        if adversary is None or not hasattr(adversary, "perturb"):
            return x
        return adversary.perturb(self.model, x, y)

    def pruning_step(self) -> bool:
        """Take the first prune stage's next pruning step; True when shapes changed."""
        from robust_compress.pruning.magnitude import make_pruner

        if self._pruner is None:
            index, stage = self._first("prune")
            if stage.method != "magnitude":
                raise UserError(
                    f"pruning_step() takes criterion-based steps (method: magnitude); the prune "
                    f"stage's method {stage.method!r} runs only inside Session.run()."
                )
            self.snapshot_dense()
            self._pruner = make_pruner(self, index, stage)
            self._pruner.prepare(self.model, self.example())
        if self._pruner.done:
            return False
        changed = self._pruner.step()
        distributed.check_same_shapes(self.model, "pruning_step")
        return changed

    def quantize(self, calib=None) -> nn.Module:
        """Switch to the first quantize stage's fake-quant model and return it."""
        from robust_compress.stages.quantize import quantize_model

        _, stage = self._first("quantize")
        self.snapshot_dense()
        return quantize_model(self, stage, calib)
