"""Does the model fit the recipe and the data? Checked once, when a session sets up."""

from __future__ import annotations

import logging

import torch
from torch import nn

from robust_compress.errors import UserError

log = logging.getLogger("robust_compress.engine.session")


def check_model_fits(session, model: nn.Module) -> None:
    """Check the recipe against ``model`` and ``model`` against the data; warnings go to the log.

    Raises:
        UserError: The recipe names layers the model lacks, or the model cannot take the data's
            input shape or gives another number of classes.
    """
    from robust_compress.recipe.checks import check_against_model

    errors, warnings = check_against_model(session.recipe, model)
    for w in warnings:
        log.warning("%s", w)
        session.hooks.on_message(f"warning: {w}")
    if errors:
        raise UserError("the recipe does not fit the model: " + "; ".join(errors))
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(session.example(2))
    except (RuntimeError, AssertionError, ValueError) as exc:  # fixed-size models assert
        msg = " ".join(str(exc).split())[:200]
        raise UserError(
            f"the model cannot take the dataset's input shape {session.input_shape}: {msg}"
        ) from None
    finally:
        model.train(was)
    if out.ndim != 2 or out.shape[1] != session.num_classes:
        raise UserError(
            f"the model returns shape {tuple(out.shape)} but the dataset has "
            f"{session.num_classes} classes: expected (N, {session.num_classes})."
        )
