"""The audit's L-inf Square attack: ART's ``SquareAttack`` at one model query per iteration.

ART 1.20.1's ``SquareAttack.generate`` (L-inf) runs three forward passes per iteration: the
predictions of *every* example (fooled or not), the loss of the current points (already known
from the previous iteration) and the loss of the candidates; and it draws one square position
for the whole batch. On a CPU that makes a 1000-query audit of 1000 Fashion-MNIST images take
about 15 minutes for a small CNN. :class:`AuditSquare` keeps ART's estimator interface,
parameter checks and step-size schedule (``_get_percentage_of_elements``) and follows the
paper's algorithm (Andriushchenko et al., 2020, as used in AutoAttack): one query per iteration,
only on the examples not yet fooled, with the best margin carried over and a square position
drawn per example. The first query is ART's vertical-stripe initialisation, so ``max_iter``
is the number of queries per example.

This module speaks numpy to ART and torch tensors to its callers, like the rest of the ART
adapter; the L2 Square attack stays ART's own (see ``art_adversary``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from art.attacks.evasion import SquareAttack
from torch import Tensor, nn

from robust_compress.adapters.art.binding import blackbox_classifier, pytorch_classifier
from robust_compress.adapters.art.state import preserved_model_state
from robust_compress.errors import UserError
from robust_compress.threat import project

RESAMPLE_ROUNDS = 5


class AuditSquare(SquareAttack):
    """L-inf Square attack (untargeted, margin loss) with one query per iteration.

    Args:
        estimator: An ART classifier returning logits.
        eps: L-inf radius in pixel space.
        max_iter: Queries per example (the stripe initialisation included).
        seed: Seed of the attack's own NumPy generator (no global state is used).
        p_init: Initial share of pixels in a square.
        batch_size: Examples per forward pass.
    """

    def __init__(self, estimator, eps: float, max_iter: int, seed: int, p_init: float = 0.8,
                 batch_size: int = 500):  # fmt: skip
        super().__init__(estimator, norm=np.inf, max_iter=max_iter, eps=eps, p_init=p_init,
                         nb_restarts=1, batch_size=batch_size, verbose=False)  # fmt: skip
        self.rng = np.random.default_rng(seed)

    def generate(self, x: np.ndarray, y: np.ndarray | None = None, **kwargs) -> np.ndarray:
        """Adversarial examples for images ``x`` (N, C, H, W) and integer labels ``y``."""
        if y is None or x.ndim != 4:
            raise ValueError("AuditSquare needs images (N, C, H, W) and integer labels.")
        x = x.astype(np.float32)
        y = np.asarray(y).astype(np.int64).reshape(-1)
        lo, hi = self.estimator.clip_values
        stripes = self.rng.choice([-self.eps, self.eps], size=(len(x), x.shape[1], 1, x.shape[3]))
        x_best = np.clip(x + stripes, lo, hi).astype(np.float32)
        margin = self.margin(x_best, y)
        for i_iter in range(self.max_iter - 1):
            active = np.flatnonzero(margin > 0)
            if len(active) == 0:
                break
            xa, xb = x[active], x_best[active]
            x_new = np.clip(xa + self._deltas(xa, xb, i_iter), lo, hi).astype(np.float32)
            m_new = self.margin(x_new, y[active])
            better = m_new < margin[active]
            x_best[active[better]] = x_new[better]
            margin[active[better]] = m_new[better]
        return x_best

    def margin(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Logit of the true class minus the largest other logit (<= 0: fooled)."""
        logits = np.asarray(self.estimator.predict(x, batch_size=self.batch_size), np.float64)
        rows = np.arange(len(y))
        true = logits[rows, y].copy()
        logits[rows, y] = -np.inf
        return true - logits.max(axis=1)

    def _deltas(self, xa: np.ndarray, xb: np.ndarray, i_iter: int) -> np.ndarray:
        """Current perturbations with one square per example set to +-eps (per channel)."""
        m, c, h, w = xa.shape
        p = self._get_percentage_of_elements(i_iter)
        s = min(max(int(round(math.sqrt(p * h * w))), 1), h - 1, w - 1)
        top = self.rng.integers(0, h - s, size=m)[:, None]
        left = self.rng.integers(0, w - s, size=m)[:, None]
        rows, cols = np.arange(h)[None], np.arange(w)[None]
        in_rows = (rows >= top) & (rows < top + s)
        in_cols = (cols >= left) & (cols < left + s)
        window = (in_rows[:, :, None] & in_cols[:, None, :])[:, None]
        deltas = xb - xa
        lo, hi = self.estimator.clip_values
        signs = self.rng.choice([-self.eps, self.eps], size=(m, c, 1, 1)).astype(np.float32)
        for _ in range(RESAMPLE_ROUNDS):  # a square that changes nothing wastes a query
            cand = np.where(window, signs, deltas)
            same = np.abs(np.clip(xa + cand, lo, hi) - xb) < 1e-7
            unchanged = same.reshape(m, -1).all(axis=1)
            if not unchanged.any():
                break
            signs[unchanged] = self.rng.choice(
                [-self.eps, self.eps], size=(int(unchanged.sum()), c, 1, 1)
            )
        return cand


def square_linf(
    target: nn.Module | Callable[[Tensor], Tensor],
    x: Tensor,
    y: Tensor,
    eps: float,
    queries: int,
    seed: int,
    num_classes: int,
    batch_size: int = 500,
) -> Tensor:
    """Run :class:`AuditSquare` on a live torch model or on any images-to-logits function.

    Args:
        target: A torch model (attacked through ART's ``PyTorchClassifier``, its state
            restored afterwards) or a function such as an ONNX Runtime session wrapper.
        x: Images in [0, 1], shape (N, C, H, W), float32 on the CPU.
        y: Integer labels, shape (N,).
        eps: L-inf radius in pixel space.
        queries: Queries per example.
        seed: Seed of the attack.
        num_classes: Number of classes (logits per example).
        batch_size: Examples per forward pass.

    Returns:
        Adversarial images like ``x``, within ``eps`` of ``x`` and in [0, 1].
    """
    if x.ndim != 4 or len(x) != len(y):
        raise UserError(f"the square attack needs images (N, C, H, W); got {tuple(x.shape)}.")
    x32 = x.detach().to(torch.float32).contiguous()
    if len(x32) == 0:
        return x.detach().clone()
    shape = tuple(x32.shape[1:])
    if isinstance(target, nn.Module):
        with preserved_model_state(target), torch.no_grad():
            clf = pytorch_classifier(target, shape, num_classes)
            adv = AuditSquare(clf, eps, queries, seed, batch_size=batch_size).generate(
                x32.numpy(), y.numpy()
            )
    else:

        def predict_np(batch: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                out = target(torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)))
            return np.asarray(out.detach().cpu().numpy() if isinstance(out, Tensor) else out)

        clf = blackbox_classifier(predict_np, shape, num_classes)
        adv = AuditSquare(clf, eps, queries, seed, batch_size=batch_size).generate(
            x32.numpy(), y.numpy()
        )
    return project(torch.from_numpy(adv), x32, eps, "linf").to(x.dtype)
