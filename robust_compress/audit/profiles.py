"""The audit's default ensemble and its strength profiles (plain data: no torch import).

The CLI reads these for its defaults and help without importing the audit itself.
"""

from __future__ import annotations

DEFAULT_ATTACKS: tuple[str, ...] = ("fgsm", "pgd", "apgd_ce", "apgd_dlr", "apgd_t", "square")

STRENGTHS: dict[str, dict[str, int | None]] = {
    "default": {"pgd_restarts": 1, "apgd_steps": None, "apgd_targets": 3, "square_queries": 300},
    "autoattack": {
        "pgd_restarts": 1,
        "apgd_steps": 100,
        "apgd_targets": 9,
        "square_queries": 5000,
    },
}
"""The budgets each ``strength`` gives the options left unset (None).

``default`` fits a CPU (``apgd_steps`` None: the audit's ``pgd_steps``); ``autoattack`` is
AutoAttack's standard budget (APGD-CE and APGD-T with 100 iterations and 1 restart, 9 target
classes, Square with 5,000 queries), meant for a GPU. See docs/audit.md for the costs.
"""
