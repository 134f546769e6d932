"""Clean and robust accuracy on the validation split, the same attack for every model."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from robust_compress.attacks.factory import build_adversary
from robust_compress.training.loop import evaluate


@dataclass
class Validator:
    """Measures models on the first ``samples`` images of the validation split.

    Every call rebuilds the attack from the same seed, so two models meet the same random
    starts and any difference between their figures is the models'.

    Attributes:
        data: The validation split (``session.holdout``).
        attack: A resolved adversary config (``val_attack``).
        norm: The threat's norm.
        seed: Seed of the attack's random starts.
        samples: Images measured.
    """

    data: object
    attack: object
    norm: str
    seed: int
    samples: int = 1000

    def __post_init__(self) -> None:
        self.data = self.data.subset(min(self.samples, len(self.data)))

    def __call__(self, model: nn.Module) -> dict[str, float]:
        """``{"clean", "robust"}`` accuracy of ``model`` (in eval mode; its mode is restored)."""
        training = model.training
        model.eval()
        try:
            adversary = build_adversary(self.attack, self.norm, self.seed)
            return {
                "clean": evaluate(model, self.data),
                "robust": evaluate(model, self.data, adversary),
            }
        finally:
            model.train(training)

    def describe(self) -> str:
        """The attack and the split in words, for reports."""
        steps = getattr(self.attack, "steps", None)
        name = f"{self.attack.attack.upper()}-{steps}" if steps else self.attack.attack
        return f"{name} at eps {self.attack.eps:g} on {len(self.data)} validation images"


def validator_for(session, stage) -> Validator:
    """The validator of a sensitivity or search stage (its ``val_attack`` and ``val_samples``)."""
    from robust_compress.errors import UserError

    if session.holdout is None:
        raise UserError(f"the {stage.kind} stage needs data.holdout (a validation split).")
    recipe = session.recipe
    return Validator(
        session.holdout, stage.val_attack, recipe.threat.norm, recipe.seed, stage.val_samples
    )
