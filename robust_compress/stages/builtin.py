"""Registers the built-in stage kinds (their runners are imported only when a stage runs)."""

from __future__ import annotations

from robust_compress.pruning.configs import PruneStage
from robust_compress.quantization.configs import QuantizeStage
from robust_compress.search.configs import SearchStage, SensitivityStage
from robust_compress.stages.configs import AuditStage, ExportStage, TrainStage
from robust_compress.stages.registry import STAGES

STAGES.add("train", "robust_compress.stages.train:run", config=TrainStage)
STAGES.add("prune", "robust_compress.stages.prune:run", config=PruneStage)
STAGES.add("sensitivity", "robust_compress.stages.sensitivity:run", config=SensitivityStage)
STAGES.add("search", "robust_compress.stages.search:run", config=SearchStage)
STAGES.add("quantize", "robust_compress.stages.quantize:run", config=QuantizeStage)
STAGES.add("export", "robust_compress.stages.export:run", config=ExportStage)
STAGES.add("audit", "robust_compress.stages.audit:run", config=AuditStage)
