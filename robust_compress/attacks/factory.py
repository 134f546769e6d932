"""The one adversary factory: an attack's config and a threat norm in, an ``Adversary`` out."""

from __future__ import annotations

from robust_compress.attacks.configs import AdversaryConfig
from robust_compress.attacks.registry import ATTACKS, AttackContext
from robust_compress.protocols import Adversary


def build_adversary(
    cfg: AdversaryConfig | None, norm: str = "linf", seed: int = 0, **context: int
) -> Adversary | None:
    """Return the adversary an attack config describes (None for None).

    Args:
        cfg: A resolved attack config (``eps`` filled in), or None.
        norm: The threat's norm.
        seed: Seed of the attack's random choices.
        **context: More of :class:`~robust_compress.attacks.registry.AttackContext`
            (``num_classes``, ``batch_size``).

    Raises:
        UserError: The attack is unknown, or its builder refuses the combination.
    """
    if cfg is None:
        return None
    build = ATTACKS.get(cfg.attack)
    return build(cfg, AttackContext(norm=norm, seed=seed, **context))
