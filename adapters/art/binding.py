"""The ART side of the adversary adapter: one classifier per live model, attacks on tensors.

Everything here speaks ART (numpy arrays, one-hot labels, estimator objects); the public
module :mod:`robust_compress.adapters.art.adversary` speaks only torch tensors.

Notes on ART 1.20.1 (read from its source; PGD's overhead is in
:mod:`robust_compress.adapters.art.pgd`):

- ``PyTorchClassifier(preprocessing=(0, 1))`` (the default) runs a standardisation op on every
  gradient call; ``preprocessing=None`` skips it.
- ``FastGradientMethod`` ignores ``eps_step`` unless ``minimal=True``: it always steps ``eps``.
  FGSM with a random start and a step of 1.25 eps is therefore run as one-step PGD.
- ``AutoProjectedGradientDescent`` with a ``loss_type`` builds its own second
  ``PyTorchClassifier`` around the same live model (and runs one forward pass to check for
  probabilities) in its constructor, so attacks are built once per binding and reused.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np
import torch
from art.attacks.evasion import (
    AutoProjectedGradientDescent,
    FastGradientMethod,
    SquareAttack,
)
from art.estimators.classification import BlackBoxClassifierNeuralNetwork, PyTorchClassifier
from torch import Tensor, nn

from robust_compress.adapters.art.pgd import ART_NORMS, Runner, TensorPGD
from robust_compress.devices import model_device
from robust_compress.errors import UserError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AttackSpec:
    """A validated attack configuration (see ``ArtAdversary`` for the meaning of each field)."""

    name: str
    eps: float
    norm: str
    step: float
    steps: int
    restarts: int
    queries: int
    batch_size: int


def pytorch_classifier(
    model: nn.Module, input_shape: tuple[int, ...], num_classes: int
) -> PyTorchClassifier:
    """Wrap the live ``model`` (no copy) in an ART classifier on its device, inputs in [0, 1].

    ART's ``device_type="gpu"`` means ``torch.cuda.current_device()``, so a model on another
    GPU makes that GPU current first.
    """
    device = model_device(model)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return PyTorchClassifier(
        model=model,
        loss=nn.CrossEntropyLoss(),
        input_shape=input_shape,
        nb_classes=num_classes,
        clip_values=(0.0, 1.0),
        preprocessing=None,
        device_type="gpu" if device.type == "cuda" else "cpu",
    )


def blackbox_classifier(
    predict: Callable[[np.ndarray], np.ndarray], input_shape: tuple[int, ...], num_classes: int
) -> BlackBoxClassifierNeuralNetwork:
    """Wrap a numpy-in, numpy-out logit function in an ART black-box classifier."""
    return BlackBoxClassifierNeuralNetwork(
        predict,
        input_shape=input_shape,
        nb_classes=num_classes,
        clip_values=(0.0, 1.0),
        preprocessing=None,
    )


def build_runner(spec: AttackSpec, estimator) -> Runner:
    """Build the ART attack ``spec`` names on ``estimator``; return ``run(x, y) -> x_adv``.

    Args:
        spec: The attack configuration.
        estimator: An ART classifier (``PyTorchClassifier``; any classifier for ``square``).

    Returns:
        A function of float32 CPU images in [0, 1] and integer labels giving adversarial images.
    """
    norm = ART_NORMS[spec.norm]
    if spec.name in ("fgsm_rs", "pgd"):
        steps = 1 if spec.name == "fgsm_rs" else spec.steps
        attack = TensorPGD(
            estimator,
            norm=norm,
            eps=spec.eps,
            eps_step=spec.step,
            max_iter=steps,
            num_random_init=spec.restarts,
            batch_size=spec.batch_size,
            verbose=False,
        )
        return attack.generate_tensor
    if spec.name == "fgsm":
        attack = FastGradientMethod(
            estimator,
            norm=norm,
            eps=spec.eps,
            eps_step=spec.eps,
            num_random_init=0,
            batch_size=spec.batch_size,
        )
    elif spec.name in ("apgd_ce", "apgd_dlr"):
        loss = "cross_entropy" if spec.name == "apgd_ce" else "difference_logits_ratio"
        attack = AutoProjectedGradientDescent(
            estimator,
            norm=norm,
            eps=spec.eps,
            eps_step=spec.step,
            max_iter=spec.steps,
            nb_random_init=spec.restarts,
            batch_size=spec.batch_size,
            loss_type=loss,
            verbose=False,
        )
    elif spec.name == "square":
        if spec.norm == "l2":
            log.warning(
                "ART 1.20.1's L2 Square attack divides its window update by the norm budget "
                "where the paper multiplies; it is weaker than published. Prefer linf, or add "
                "gradient attacks to an L2 audit."
            )
        attack = SquareAttack(
            estimator,
            norm=norm,
            eps=spec.eps,
            max_iter=spec.queries,
            p_init=0.8,
            nb_restarts=spec.restarts,
            batch_size=spec.batch_size,
            verbose=False,
        )
    else:  # pragma: no cover - names are validated before
        raise ValueError(spec.name)
    # ART's L2 Square divides by zero on some windows; it discards those NaN candidates itself.
    return _numpy_runner(attack, quiet=spec.name == "square" and spec.norm == "l2")


def _numpy_runner(attack, quiet: bool = False) -> Runner:
    def run(x: Tensor, y: Tensor) -> Tensor:
        errstate = np.errstate(divide="ignore", invalid="ignore") if quiet else nullcontext()
        with errstate:
            adv = attack.generate(x.numpy(), y.numpy())
        return torch.from_numpy(np.ascontiguousarray(adv, dtype=np.float32))

    return run


@dataclass
class Binding:
    """One ART classifier and attack bound to one live model and its current parameters.

    The binding holds the model and its parameter objects (strong references, so their ids
    cannot be reused by new objects while it lives) and is stale once either is replaced.
    """

    model: nn.Module
    params: tuple[nn.Parameter, ...]
    input_shape: tuple[int, ...]
    num_classes: int
    classifier: PyTorchClassifier
    run: Runner = field(repr=False)

    def fits(self, model: nn.Module, input_shape: tuple[int, ...]) -> bool:
        """True when ``model`` is the bound object with the same parameter objects and shapes."""
        if model is not self.model or input_shape != self.input_shape:
            return False
        params = tuple(model.parameters())
        return len(params) == len(self.params) and all(
            a is b and a.shape == s
            for a, b, s in zip(params, self.params, self._shapes, strict=True)
        )

    def __post_init__(self) -> None:
        self._shapes = tuple(p.shape for p in self.params)


def bind(spec: AttackSpec, model: nn.Module, x: Tensor) -> Binding:
    """Build a fresh :class:`Binding` for ``model`` (in eval mode) and inputs like ``x``."""
    with torch.no_grad():
        logits = model(x[:1])
    if logits.ndim != 2:
        raise UserError(
            f"the model returned an output of shape {tuple(logits.shape)}; an adversary needs "
            "a classifier that returns logits of shape (batch, classes)."
        )
    if spec.name == "apgd_dlr" and logits.shape[1] < 3:
        raise UserError("apgd_dlr needs at least 3 classes; use apgd_ce for this model.")
    input_shape = tuple(x.shape[1:])
    clf = pytorch_classifier(model, input_shape, int(logits.shape[1]))
    log.debug("bound ART %s to %s (%d classes)", spec.name, type(model).__name__, clf.nb_classes)
    return Binding(
        model, tuple(model.parameters()), input_shape, clf.nb_classes, clf, build_runner(spec, clf)
    )
