"""ART's PGD on torch tensors, and ART's PGD used as documented (the benchmark baseline).

Overhead of ``ProjectedGradientDescentPyTorch`` in ART 1.20.1 (read from its source) and what
:class:`TensorPGD` does about it:

- ``generate`` ends with ``logger.info("Success rate ...", compute_success(...))``; the
  argument is evaluated whatever the log level: two extra forward passes over the batch per
  call. ``TensorPGD`` calls the class's per-batch routine ``_generate_batch`` on torch tensors
  instead, which also skips the numpy round trip, the DataLoader and the label conversion.
- Per step, ``_projection`` broadcasts a scalar eps to a float64 numpy array of the batch's
  shape and copies it into a tensor; ``_apply_perturbation_pytorch`` builds three small
  tensors and a NaN mask; ``_compute_perturbation_pytorch`` syncs on a NaN check and spends
  five tensor ops on what is sign(gradient) under L-inf. Each extra op is cheap alone, but
  together they cost about 5% per step, and much more when the CPU's threads are contended.
  ``TensorPGD`` overrides the three with equivalent float32 torch ops for the common case
  (scalar eps and box; L-inf direction untargeted, without mask or momentum) and falls back to
  ART's code otherwise. The tests check the result against ``generate``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from art.attacks.evasion import ProjectedGradientDescent, ProjectedGradientDescentPyTorch
from art.estimators.classification import PyTorchClassifier
from torch import Tensor, nn

Runner = Callable[[Tensor, Tensor], Tensor]
ART_NORMS = {"linf": np.inf, "l2": 2}


class TensorPGD(ProjectedGradientDescentPyTorch):
    """ART's PyTorch PGD driven on torch tensors, without the success-rate log line's passes."""

    def generate_tensor(self, x: Tensor, y: Tensor) -> Tensor:
        """Adversarial examples for ``x`` (float32, [0, 1]) and integer labels ``y``.

        With several random restarts, an example keeps the first restart that fools the model;
        later restarts attack only the examples still classified correctly.
        """
        out = torch.empty_like(x)
        for i in range(0, len(x), self.batch_size):
            out[i : i + self.batch_size] = self._restarts(
                x[i : i + self.batch_size], y[i : i + self.batch_size]
            )
        return out

    def _restarts(self, x: Tensor, y: Tensor) -> Tensor:
        best = self._once(x, y)
        for _ in range(1, max(1, self.num_random_init)):
            robust = self._correct(best, y)
            if not robust.any():
                break
            cand = self._once(x[robust], y[robust])
            fooled = ~self._correct(cand, y[robust])
            idx = robust.nonzero().squeeze(1)[fooled]
            best[idx] = cand[fooled]
        return best

    def _once(self, x: Tensor, y: Tensor) -> Tensor:
        onehot = F.one_hot(y, self.estimator.nb_classes).to(torch.float32)
        adv = self._generate_batch(x, onehot, None, self.eps, self.eps_step)
        return torch.from_numpy(adv)

    def _correct(self, x: Tensor, y: Tensor) -> Tensor:
        device = self.estimator.device  # the model's; x, y and the result stay on the CPU
        with torch.no_grad():
            return (self.estimator.model(x.to(device)).argmax(1) == y.to(device)).cpu()

    def _compute_perturbation_pytorch(
        self, x: Tensor, y: Tensor, mask: Tensor | None, momentum: Tensor
    ) -> Tensor:
        """ART's L-inf direction, sign(gradient), without its NaN check's host sync.

        Only for the plain case (untargeted, no mask, no momentum, no summary writer); a NaN
        gradient still gives a zero step, in :meth:`_apply_perturbation_pytorch`.
        """
        plain = mask is None and self.decay is None and not self.targeted
        if self.norm not in ("inf", np.inf) or not plain or self.summary_writer is not None:
            return super()._compute_perturbation_pytorch(x, y, mask, momentum)
        return self.estimator.loss_gradient(x=x, y=y).sign()

    def _apply_perturbation_pytorch(self, x: Tensor, perturbation: Tensor, eps_step) -> Tensor:
        """ART's step for a scalar step size and box, in fewer tensor ops (NaN steps are 0)."""
        low, high = self.estimator.clip_values
        if not isinstance(eps_step, int | float) or np.size(low) != 1 or np.size(high) != 1:
            return super()._apply_perturbation_pytorch(x, perturbation, eps_step)
        step = torch.nan_to_num(perturbation * eps_step, nan=0.0, posinf=math.inf, neginf=-math.inf)
        return (x + step).clamp_(float(low), float(high))

    @staticmethod
    def _projection(values: Tensor, eps, norm_p, *, suboptimal: bool = True) -> Tensor:
        """ART's projection for a scalar eps, in float32 torch ops.

        ART's own version broadcasts eps to a float64 numpy array of the batch's full shape
        and copies it into a tensor on every step.
        """
        norm = np.inf if norm_p == "inf" else float(norm_p)
        if not isinstance(eps, int | float) or norm not in (np.inf, 2.0):
            return ProjectedGradientDescentPyTorch._projection(
                values, eps, norm_p, suboptimal=suboptimal
            )
        if norm == np.inf:
            return values.clamp(-eps, eps)
        flat = values.reshape(len(values), -1)
        size = torch.linalg.norm(flat, dim=1, keepdim=True)
        scale = torch.where(size == 0, 1.0, (eps / size).clamp_(max=1.0))
        return (flat * scale).reshape(values.shape)


def documented_pgd(
    model: nn.Module,
    input_shape: tuple[int, ...],
    num_classes: int,
    eps: float,
    step: float,
    steps: int,
    batch_size: int = 512,
    norm: str = "linf",
) -> Runner:
    """ART's PGD used the way its documentation shows (a baseline for the overhead benchmark).

    ``ProjectedGradientDescent.generate`` on numpy arrays, a classifier with the default
    ``preprocessing=(0, 1)``, parameter gradients left on. The caller keeps the model's state.
    """
    clf = PyTorchClassifier(
        model=model,
        loss=nn.CrossEntropyLoss(),
        input_shape=input_shape,
        nb_classes=num_classes,
        clip_values=(0.0, 1.0),
        device_type="cpu",
    )
    attack = ProjectedGradientDescent(
        clf,
        norm=ART_NORMS[norm],
        eps=eps,
        eps_step=step,
        max_iter=steps,
        num_random_init=1,
        batch_size=batch_size,
        verbose=False,
    )

    def run(x: Tensor, y: Tensor) -> Tensor:
        return torch.from_numpy(attack.generate(x.numpy(), y.numpy()))

    return run
