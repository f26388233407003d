"""Fabricated attention with planted signal: known ground truth for tests, benchmarks and demos.

Every participant gets positive, skewed (gamma) background attention over ROIs, ROI-gene pairs and genes
(mean ``shape``); participants of a stage get ``effect * shape`` added to that stage's planted ROIs, to the
planted genes and to the planted ROI-gene pairs, before each participant's attention is normalised. The
shift is additive, so planted attention is larger *and* more consistent across participants, which is
what the stability ratio (mean / CI width, invariant to scaling) rewards. ``effect = 0`` gives attention
with no signal (the baseline a recovery must beat).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from rgenima_app.imaging.roi_table import roi_names as canonical_roi_names


@dataclass
class FabricatedCohort:
    groups: list[str]
    roi_names: list[str]
    genes: list[str]
    roi_importance: np.ndarray   # participants x ROIs (rows sum to 1)
    roi_gene: np.ndarray         # participants x ROIs x genes
    gene_importance: np.ndarray  # participants x genes (rows sum to 1)


def fabricate_attention(n_per_group: Mapping[str, int], genes: Sequence[str],
                        planted_rois: Mapping[str, Sequence[str]] | None = None,
                        planted_genes: Sequence[str] = (),
                        planted_pairs: Mapping[str, Sequence[tuple[str, str]]] | None = None,
                        effect: float = 1.0, shape: float = 2.0, seed: int = 0,
                        roi_names: Sequence[str] | None = None) -> FabricatedCohort:
    """A cohort of ``sum(n_per_group)`` participants with attention planted per stage (see module doc)."""
    rng = np.random.default_rng(seed)
    rois = list(roi_names or canonical_roi_names())
    genes = list(genes)
    roi_index = {r: i for i, r in enumerate(rois)}
    gene_index = {g: i for i, g in enumerate(genes)}
    groups = [g for g, n in n_per_group.items() for _ in range(int(n))]
    n = len(groups)
    roi = rng.standard_gamma(shape, size=(n, len(rois)))
    pair = rng.standard_gamma(shape, size=(n, len(rois), len(genes)), dtype=np.float32)
    gene = rng.standard_gamma(shape, size=(n, len(genes)))
    labels = np.asarray(groups)
    for stage, names in (planted_rois or {}).items():
        members = labels == stage
        roi[np.ix_(members, [roi_index[r] for r in names])] += effect * shape
    if planted_genes:
        gene[:, [gene_index[g] for g in planted_genes]] += effect * shape
    for stage, pairs in (planted_pairs or {}).items():
        members = np.flatnonzero(labels == stage)
        for r, g in pairs:
            pair[members, roi_index[r], gene_index[g]] += effect * shape
    return FabricatedCohort(
        groups=groups, roi_names=rois, genes=genes,
        roi_importance=roi / roi.sum(axis=1, keepdims=True),
        roi_gene=pair / pair.sum(axis=2, keepdims=True),
        gene_importance=gene / gene.sum(axis=1, keepdims=True),
    )
