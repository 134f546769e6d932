"""Helpers of the ART adapter: keep a live model's state and the global RNGs as they were.

ART puts the model in eval mode, sets every parameter's ``.grad`` to None
(``zero_grad()`` in ``PyTorchClassifier.loss_gradient``) and draws its random starts from the
global NumPy (and, for the L2 Square attack, Python) random generators. These context managers
undo all of that, so a caller gets its model and its random streams back exactly as it gave them.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from robust_compress.models.state import preserved_state


@contextlib.contextmanager
def preserved_model_state(model: nn.Module) -> Iterator[nn.Module]:
    """Attack-ready ``model`` (eval mode, parameter gradients off, autograd on), restored after.

    On exit every submodule gets back its own ``training`` flag, every parameter its
    ``requires_grad`` flag and its ``.grad`` (the same tensor object, or None). Eval mode keeps
    BatchNorm running statistics untouched during the attack; with ``requires_grad`` off the
    backward pass computes only the input gradient.

    Args:
        model: The live model; changed in place and restored.

    Yields:
        The same model.
    """
    with preserved_state(model, eval_mode=True, requires_grad=False, keep_grads=True):
        with torch.enable_grad():
            yield model


@contextlib.contextmanager
def seeded_rngs(seed: int) -> Iterator[None]:
    """Seed the global NumPy, Python and torch (CPU) RNGs with ``seed``; restore them after.

    ART's attacks draw from the global generators; seeding them here makes an attack
    reproducible, and restoring them leaves the caller's own random streams untouched.

    Args:
        seed: A non-negative integer below 2**32.
    """
    np_state = np.random.get_state()
    py_state = random.getstate()
    with torch.random.fork_rng(devices=[]):
        np.random.seed(seed)
        random.seed(seed)
        torch.manual_seed(seed)
        try:
            yield
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)
