"""One module per stage kind (``run(session, config, label)``); the kinds are in :data:`STAGES`.

Importing this package is cheap: a stage's module is imported when the stage runs.
"""

from robust_compress.stages.registry import STAGES

__all__ = ["STAGES"]
