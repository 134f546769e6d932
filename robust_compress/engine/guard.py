"""The dead-network guard: a stage that leaves a model blind to its inputs stops the run.

After every stage that changes the model, the engine runs it on a few training images. If
the outputs are not finite, or are the same for every image (the network is dead: constant
logits, e.g. every channel of a layer pruned to zero or a training run that diverged), the
stage stops with a :class:`~robust_compress.errors.RunError` naming it, instead of carrying a
dead model into export and audit. Accuracy at chance is not a criterion: a tiny run on
synthetic data can be at chance and still learning.
"""

from __future__ import annotations

import torch

from robust_compress.errors import RunError
from robust_compress.models.state import preserved_state

PROBE_IMAGES = 16
#: Every message of the guard says this, so a script driving the CLI can tell its stop apart.
MARK = "dead-network guard"


def check_alive(session, label: str) -> None:
    """Raise when ``session.model``'s outputs do not depend on its inputs.

    Args:
        session: The running session (its model and training images).
        label: The stage's label (``INDEX:KIND``), named in the message.

    Raises:
        RunError: The outputs on :data:`PROBE_IMAGES` training images are not finite, or are
            the same for every image.
    """
    x = session.example(PROBE_IMAGES)
    model = session.model
    with preserved_state(model, eval_mode=True), torch.no_grad():
        out = model(x).float()
    if not torch.isfinite(out).all():
        raise RunError(
            f"stage {label} left a model whose outputs are not finite (NaN or inf) on "
            f"{len(x)} training images: lower the stage's learning rate, or check its inputs "
            f"({MARK}: the run stops here, before export and audit)."
        )
    spread = float((out - out[:1]).abs().max())
    if len(x) > 1 and spread <= 1e-6 * max(float(out.abs().max()), 1.0):
        raise RunError(
            f"stage {label} left a dead network: its outputs do not depend on the input (the "
            f"same logits for {len(x)} different training images). Lower the stage's ratio or "
            "learning rate, warm the learning rate up (lr_schedule: onecycle), or give it more "
            f"epochs ({MARK}: the run stops here, before export and audit)."
        )
