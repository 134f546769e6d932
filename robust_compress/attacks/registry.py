"""The attack registry: every attack a recipe, the engine or the audit can name.

An entry's item is ``build(config, context) -> Adversary``; its config class (a member of
:class:`~robust_compress.attacks.configs.AdversaryConfig`) holds the attack's own fields and
defaults. Meta facts the audit reads: ``label`` (for reports), ``rank`` (the audit runs attacks
cheapest first), ``alone`` (run on every clean-correct example, so its figure is its own),
``gradient`` (False: the attack only queries scores, so it can run on an ONNX file), and
``training`` (False: not offered as a training adversary).
"""

from __future__ import annotations

from dataclasses import dataclass

from robust_compress.registry import ATTACKS

__all__ = ["ATTACKS", "AttackContext", "audit_order", "label", "meta"]


@dataclass(frozen=True)
class AttackContext:
    """What a builder needs beyond the attack's config.

    Attributes:
        norm: The threat's norm, ``linf`` or ``l2``.
        seed: Seed of the attack's random choices.
        num_classes: Classes the model returns (score-based attacks need it).
        batch_size: Examples per attack call inside the attack's library.
    """

    norm: str = "linf"
    seed: int = 0
    num_classes: int | None = None
    batch_size: int = 512


def meta(name: str, key: str, default=None):
    """One meta fact of attack ``name`` (``default`` when the entry does not set it)."""
    return ATTACKS.entry(name).meta.get(key, default)


def label(name: str) -> str:
    """The attack's name in reports (``PGD``, ``APGD-CE``, ...)."""
    return meta(name, "label", name)


def audit_order() -> tuple[str, ...]:
    """Every attack the audit can run, cheapest first (a plugin's come after the built-ins)."""
    entries = [e for e in ATTACKS.entries() if e.meta.get("audit", True)]
    return tuple(e.name for e in sorted(entries, key=lambda e: e.meta.get("rank", 100)))
