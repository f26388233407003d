"""Planted ground truth of the fabricated test cohorts."""
from __future__ import annotations

from rgenima_app.analysis.group import AnalysisOptions
from rgenima_app.synthetic import fabricate_attention

GENES = [f"GENE{i:02d}" for i in range(40)]
PLANTED_GENES = ["GENE03", "GENE11", "GENE17", "GENE29", "GENE35"]
GWAS = PLANTED_GENES[:4] + ["GENE01", "GENE05", "GENE08", "GENE20", "GENE22", "GENE31"]
PLANTED_ROIS = {
    "SMC": ["Left-Thalamus", "ctx-rh-insula", "Left-Caudate", "Left-Putamen"],
    "MCI": ["Left-Thalamus", "ctx-rh-insula", "ctx-rh-temporalpole", "ctx-rh-frontalpole"],
    "AD": ["Left-Thalamus", "ctx-rh-insula", "Left-Caudate", "Left-Hippocampus", "ctx-lh-entorhinal"],
}
PLANTED_PAIRS = {stage: [(rois[0], "GENE03"), (rois[1], "GENE11")] for stage, rois in PLANTED_ROIS.items()}
GROUP_SIZES = {"NC": 30, "SMC": 24, "MCI": 30, "AD": 26}
OPTIONS = AnalysisOptions(n_boot=300, seed=11, roi_top_k=8, gene_top=8)


def make_cohort(effect: float, seed: int = 5):
    return fabricate_attention(GROUP_SIZES, GENES, PLANTED_ROIS, PLANTED_GENES, PLANTED_PAIRS,
                               effect=effect, seed=seed)

