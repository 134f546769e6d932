"""ART attacks as an adversary for a live PyTorch model: torch tensors in, torch tensors out.

:class:`ArtAdversary` implements :class:`robust_compress.protocols.Adversary`. It binds one
ART ``PyTorchClassifier`` to the model it is given (no copy), reuses it while the model and
its parameter objects stay the same, and binds again when they change (after pruning replaced
parameters, or when quantization returned a new module). Each call gives the model back
exactly as it found it: train/eval mode of every submodule, ``requires_grad`` flags, parameter
``.grad`` tensors (ART sets them to None) and BatchNorm statistics (the attack runs in eval
mode). Labels are always passed to ART, so it never attacks its own predictions.

Example, in a user's own training loop::

    adversary = ArtAdversary("pgd", eps=0.1, steps=7)
    for x, y in loader:
        x_adv = adversary.perturb(model, x, y)
        loss = F.cross_entropy(model(x_adv), y)
        ...

:func:`black_box_attack` runs ART's Square attack on any function from images to logits, such
as an ONNX Runtime session.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from robust_compress.adapters.art.binding import (
    AttackSpec,
    Binding,
    bind,
    blackbox_classifier,
    build_runner,
)
from robust_compress.adapters.art.state import preserved_model_state, seeded_rngs
from robust_compress.errors import UserError, suggest
from robust_compress.threat import NORMS, check_eps, default_step, project

ATTACKS: tuple[str, ...] = ("fgsm", "fgsm_rs", "pgd", "apgd_ce", "apgd_dlr", "square")
"""The attacks this adapter runs through ART (the attack registry maps recipes onto them)."""
SETTINGS: tuple[str, ...] = ("step", "steps", "restarts", "queries", "batch_size")
_NO_STEP = ("fgsm", "square")


def make_spec(
    attack: str,
    eps: float,
    norm: str = "linf",
    step: float | None = None,
    steps: int = 10,
    restarts: int = 1,
    queries: int = 1000,
    batch_size: int = 512,
) -> AttackSpec:
    """Validate an attack configuration (see :class:`ArtAdversary`).

    Raises:
        UserError: An unknown attack or norm, or a value out of range.
    """
    if attack not in ATTACKS:
        raise UserError(f"unknown attack {attack!r}." + suggest(attack, ATTACKS))
    if norm not in NORMS:
        raise UserError(f"unknown norm {norm!r} for attack {attack!r}." + suggest(norm, NORMS))
    eps = check_eps(eps, norm)
    for name, value in (
        ("steps", steps),
        ("restarts", restarts),
        ("queries", queries),
        ("batch_size", batch_size),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise UserError(f"{name} must be a positive integer, got {value!r}.")
    if step is not None:
        if attack in _NO_STEP:
            raise UserError(
                f"attack {attack!r} takes no step size (fgsm steps eps; square samples squares "
                "of size eps); remove step or use fgsm_rs/pgd."
            )
        if not (isinstance(step, int | float) and math.isfinite(step) and step > 0):
            raise UserError(f"step must be a positive number, got {step!r}.")
    if attack == "fgsm" and restarts != 1:
        raise UserError("fgsm has no random start, so restarts must be 1; use fgsm_rs or pgd.")
    step = float(step) if step is not None else default_step(attack, eps, steps)
    return AttackSpec(attack, float(eps), norm, step, steps, restarts, queries, batch_size)


class ArtAdversary:
    """An ART attack that perturbs batches of a live model (an ``Adversary``).

    Args:
        attack: One of :data:`ATTACKS`: ``fgsm``; ``fgsm_rs`` (random start and one step of
            1.25 eps); ``pgd`` (random start, ``steps`` steps); ``apgd_ce`` / ``apgd_dlr``
            (Auto-PGD on cross-entropy / difference-of-logits-ratio loss); ``square``
            (score-based black-box attack, no gradients).
        eps: Radius of the threat model in pixel space (inputs in [0, 1]).
        norm: ``linf`` or ``l2``.
        step: Step size: 1.25 eps for fgsm_rs, 2.5 eps / steps for pgd, 2 eps (initial) for
            APGD by default. Not allowed for fgsm and square.
        steps: Iterations of pgd and APGD.
        restarts: Random restarts (pgd, fgsm_rs, APGD, square); an example keeps the first
            restart that fools the model.
        seed: Seed of the random starts; a new adversary with the same seed, model and
            inputs gives the same output. Successive calls draw fresh random starts.
        queries: Iterations of the Square attack (one new query per example each).
        batch_size: Examples per attack batch inside ART.

    ``step``, ``steps``, ``restarts``, ``queries`` and ``batch_size`` are keywords of
    ``**settings`` (see :func:`make_spec`).

    Raises:
        UserError: Unknown attack or norm, or values out of range.
    """

    def __init__(
        self, attack: str, eps: float, *, norm: str = "linf", seed: int = 0, **settings: Any
    ):
        unknown = sorted(set(settings) - set(SETTINGS))
        if unknown:
            raise UserError(
                f"unknown ArtAdversary setting {unknown[0]!r}." + suggest(unknown[0], SETTINGS)
            )
        self.spec = make_spec(attack, eps, norm, **settings)
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self._binding: Binding | None = None

    def __repr__(self) -> str:
        s = self.spec
        return (
            f"ArtAdversary({s.name!r}, eps={s.eps}, norm={s.norm!r}, step={s.step}, "
            f"steps={s.steps}, restarts={s.restarts}, seed={self.seed})"
        )

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        """Return adversarial examples for ``(x, y)`` against ``model`` as it is now.

        Args:
            model: The live classifier, returning logits, on any device (ART's classifier
                runs it there; the batch goes through the CPU as numpy arrays).
            x: Images in [0, 1], shape (N, C, H, W) (any shape (N, ...) except for square).
            y: Integer labels, shape (N,).

        Returns:
            A new tensor like ``x``, in [0, 1] and within ``eps`` of ``x`` under ``norm``.

        Raises:
            UserError: Bad inputs or labels.
        """
        x32, y = _check_batch(x, y, image=self.spec.name == "square")
        _check_model(model)
        call_seed = int(self._rng.integers(2**31))
        if len(x32) == 0:
            return x.detach().clone()
        with preserved_model_state(model):
            binding = self._bound(model, x32)
            _check_labels(y, binding.num_classes)
            with seeded_rngs(call_seed):
                adv = binding.run(x32, y)
        return project(adv, x32, self.spec.eps, self.spec.norm).to(x.device, x.dtype)

    def _bound(self, model: nn.Module, x: Tensor) -> Binding:
        input_shape = tuple(x.shape[1:])
        if self._binding is None or not self._binding.fits(model, input_shape):
            self._binding = None  # drop the old model before binding the new one
            self._binding = bind(self.spec, model, x)
        return self._binding


def black_box_attack(
    predict: Callable[[Tensor], Tensor],
    x: Tensor,
    y: Tensor,
    eps: float,
    norm: str = "linf",
    queries: int = 1000,
    seed: int = 0,
    num_classes: int = 10,
) -> Tensor:
    """Square attack (score-based, no gradients) on any function from images to logits.

    ``predict`` maps a batch of images in [0,1] to logits, e.g. an ONNX Runtime session
    wrapper. Returns adversarial images.

    Args:
        predict: Maps a float32 batch (N, C, H, W) to logits (N, num_classes), as a tensor or
            a numpy array. Called without autograd.
        x: Images in [0, 1], shape (N, C, H, W).
        y: Integer labels, shape (N,).
        eps: Radius of the threat model in pixel space.
        norm: ``linf`` or ``l2``.
        queries: Square-attack iterations (one new query per example each).
        seed: Seed of the attack's random squares.
        num_classes: Number of classes ``predict`` returns.

    Returns:
        Adversarial images like ``x``, in [0, 1] and within ``eps`` of ``x``.

    Raises:
        UserError: Bad arguments, or ``predict`` returned the wrong shape.
    """
    spec = make_spec("square", eps, norm, queries=queries)
    x32, y = _check_batch(x, y, image=True)
    _check_labels(y, num_classes)
    if len(x32) == 0:
        return x.detach().clone()

    def predict_np(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = predict(torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)))
        out = out.detach().cpu().numpy() if isinstance(out, Tensor) else np.asarray(out)
        if out.shape != (len(batch), num_classes):
            raise UserError(
                f"predict returned shape {out.shape} for {len(batch)} images; expected logits "
                f"of shape ({len(batch)}, {num_classes}) (set num_classes)."
            )
        return out.astype(np.float32, copy=False)

    clf = blackbox_classifier(predict_np, tuple(x32.shape[1:]), num_classes)
    with seeded_rngs(int(np.random.default_rng(seed).integers(2**31))):
        adv = build_runner(spec, clf)(x32, y)
    return project(adv, x32, spec.eps, spec.norm).to(x.device, x.dtype)


def _check_batch(x: Tensor, y: Tensor, image: bool) -> tuple[Tensor, Tensor]:
    if not isinstance(x, Tensor) or not x.is_floating_point() or x.ndim < 2:
        raise UserError("x must be a floating-point tensor of shape (batch, ...).")
    if image and x.ndim != 4:
        raise UserError(f"the square attack needs images (N, C, H, W); got shape {tuple(x.shape)}.")
    if not isinstance(y, Tensor) or y.shape != (len(x),) or y.is_floating_point():
        raise UserError(f"y must be an integer tensor of shape ({len(x)},) (class indices).")
    if len(x) and (x.min() < 0 or x.max() > 1):
        raise UserError(
            f"inputs must lie in [0, 1] (got [{float(x.min()):.3g}, {float(x.max()):.3g}]); "
            "move any normalisation inside the model."
        )
    # ART takes numpy arrays: the batch goes through the CPU, the model stays on its device
    return x.detach().to("cpu", torch.float32).contiguous(), y.detach().to("cpu").long()


def _check_labels(y: Tensor, num_classes: int) -> None:
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise UserError(
            f"labels must be class indices in [0, {num_classes - 1}]; got {int(y.min())}.."
            f"{int(y.max())}."
        )


def _check_model(model: nn.Module) -> None:
    if not isinstance(model, nn.Module):
        raise UserError(f"model must be a torch nn.Module, got {type(model).__name__}.")
