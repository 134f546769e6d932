"""One module per stage kind; each exports ``run(session, stage, label)``."""

from __future__ import annotations

from robust_compress.stages import audit, export, prune, quantize, train

STAGE_RUNNERS = {
    "train": train.run,
    "prune": prune.run,
    "quantize": quantize.run,
    "export": export.run,
    "audit": audit.run,
}
