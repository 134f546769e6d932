"""The ``sensitivity`` stage: robust sensitivity of the current model, a table and heat maps."""

from __future__ import annotations

from robust_compress.stages.contract import StageResult


def run(session, stage, label: str) -> StageResult:
    """Measure per-layer prune and bit sensitivity on the validation split; change nothing."""
    from robust_compress.search.batchnorm import calibrator
    from robust_compress.search.plots import write_sensitivity_plots
    from robust_compress.search.sensitivity import measure_sensitivity
    from robust_compress.search.validation import validator_for

    measure = validator_for(session, stage)
    model = session.float_reference().eval()
    calibrate = calibrator(session, stage.bn_batches, stage.val_attack)
    seed = session.recipe.seed
    report = measure_sensitivity(model, session.example(), measure, stage, seed, calibrate)
    report["attack"] = measure.describe()
    report["plots"] = write_sensitivity_plots(session, report)
    return StageResult("sensitivity", report)
