"""The registries of the prune stage: its methods and the structured pruner's criteria.

:data:`PRUNE_METHODS`: an entry's item is ``run(session, stage, label)``, which leaves
``session.model`` pruned and writes the report section ``session.results["prune"]``; its config
class is the member of :class:`~robust_compress.pruning.configs.PruneStage` holding the
method's own fields (a recipe's ``method`` picks it).

:data:`IMPORTANCE`: an entry's item is ``build(seed) -> torch_pruning.importance.Importance``;
the Torch-Pruning adapter ranks channels with what it returns. Meta facts:

- ``magnitude``: it ranks channels by their weights alone, so the group-norm regulariser of
  sparse training can re-score groups with it at every call (``sparse_epochs`` needs it);
- ``gradients``: it needs loss gradients; the adapter sums them over ``grad_batches`` batches
  before each step and hands them to the built object as its ``grads`` attribute;
- ``needs_adversary``: those gradients are taken on adversarial examples, so the stage needs
  an adversary (the recipe loader gives one, PGD, when the stage names none).

Both registries fill themselves from :mod:`robust_compress.pruning.builtin` on first use; a
plugin adds its own with :meth:`~robust_compress.registry.Registry.add`.
"""

from __future__ import annotations

from robust_compress.registry import IMPORTANCE, PRUNE_METHODS

__all__ = ["IMPORTANCE", "PRUNE_METHODS", "importance_fact"]


def importance_fact(name: str, key: str) -> bool:
    """One meta fact (``magnitude``, ``gradients``, ``needs_adversary``) of criterion ``name``.

    Raises:
        UserError: ``name`` is not a registered criterion (the message lists close names).
    """
    return bool(IMPORTANCE.entry(name).meta.get(key, False))
