"""Comparable importance (per SNP, relative to a reference), stage contrasts, and the linear controls.

Fabricated attention with the biases the issue found in real rollout: a position effect (early ROI tokens
get more attention in everyone) and long gene blocks (gene importance summed over more tokens). The paper's
raw ranking must pick the biased features and the debiased method the planted ones.
"""
from __future__ import annotations

import numpy as np
import pytest

from rgenima_app.analysis.group import AnalysisOptions, analyse_cohort
from rgenima_app.analysis.importance import comparable_importance, per_snp, relative_to, resolve_reference
from rgenima_app.analysis.settings import analysis_settings
from rgenima_app.analysis.stage_rois import stage_specific_rois, topk_frequency
from rgenima_app.errors import UsageError
from rgenima_app.imaging.roi_table import roi_names

ROIS = roi_names()
PLANTED_ROIS = ["Left-Hippocampus", "Right-Hippocampus", "ctx-lh-entorhinal", "ctx-rh-entorhinal", "Left-Amygdala"]
SIZES = {"NC": 40, "SMC": 30, "MCI": 40, "AD": 40}
STAGE_EFFECT = {"NC": 0.0, "SMC": 0.3, "MCI": 0.6, "AD": 1.0}


def _groups() -> list[str]:
    return [g for g, n in SIZES.items() for _ in range(n)]


def _position_biased_rois(seed: int = 0) -> np.ndarray:
    """Gamma background times a position profile (the first 12 ROI tokens 3-16x brighter, in everyone),
    plus attention on the planted ROIs that grows with stage (none in NC)."""
    rng = np.random.default_rng(seed)
    groups = _groups()
    position = 1.0 + 15.0 * np.exp(-np.arange(len(ROIS)) / 6.0)
    roi = rng.standard_gamma(4.0, size=(len(groups), len(ROIS))) * position
    planted = [ROIS.index(r) for r in PLANTED_ROIS]
    effect = np.array([STAGE_EFFECT[g] for g in groups])
    roi[:, planted] += 0.8 * effect[:, None] * rng.standard_gamma(4.0, size=(len(groups), len(planted)))
    return roi / roi.sum(axis=1, keepdims=True)


def _selected(table, group: str) -> set[str]:
    return set(table.loc[(table["group"] == group) & table["selected"], "roi"])


def test_position_bias_fools_the_raw_ranking_and_not_the_stage_contrast():
    roi, groups = _position_biased_rois(), _groups()
    raw = stage_specific_rois(roi, groups, ROIS, k=10, n_boot=200, seed=1)
    assert len(_selected(raw, "AD") & set(PLANTED_ROIS)) <= 1          # the bright early tokens win
    assert _selected(raw, "AD") & set(ROIS[:12])
    ranked = comparable_importance(roi, groups, "relative", "NC")
    contrast = stage_specific_rois(ranked, groups, ROIS, k=10, n_boot=200, seed=1, contrast="NC")
    chosen = _selected(contrast, "AD")
    assert chosen & set(PLANTED_ROIS) == set(PLANTED_ROIS)
    assert len(chosen & set(PLANTED_ROIS)) / len(chosen) >= 0.5
    # the contrast also works with the cohort as the reference
    cohort = stage_specific_rois(comparable_importance(roi, groups, "relative", "cohort"), groups, ROIS, k=10,
                                 n_boot=200, seed=1, contrast="cohort")
    assert len(_selected(cohort, "AD") & set(PLANTED_ROIS)) >= 3


def test_long_gene_blocks_fool_the_raw_sum_and_not_per_snp():
    rng = np.random.default_rng(3)
    groups = _groups()
    genes = [f"G{i:02d}" for i in range(30)]
    snps = np.where(np.arange(30) < 6, 2, 8)           # the planted genes G00-G05 are short blocks
    per_token = rng.standard_gamma(4.0, size=(len(groups), 30))
    per_token[:, :6] *= 2.0                             # ... and attended twice as much per SNP
    summed = per_token * snps                           # rollout sums a gene's tokens
    options = AnalysisOptions(n_boot=200, seed=2, gene_top=6, roi_top_k=1, importance="raw")
    empty_pairs = np.zeros((len(groups), 2, len(genes)))
    rois = ["Left-Hippocampus", "Right-Hippocampus"]

    def stable(opts) -> set[str]:
        table = analyse_cohort(np.ones((len(groups), 2)), empty_pairs, groups, rois, genes, [], summed, opts,
                               snps_per_gene=list(snps)).gene_ranking
        return set(table.loc[(table["group"] == "all") & table["stable"], "gene"])

    assert not stable(options) & set(genes[:6])
    assert stable(AnalysisOptions(n_boot=200, seed=2, gene_top=6, roi_top_k=1)) == set(genes[:6])   # the default: per SNP
    np.testing.assert_allclose(per_snp(summed, snps), per_token)


def test_relative_importance_cancels_a_per_feature_factor():
    rng = np.random.default_rng(0)
    values = rng.random((20, 5))
    rows = np.arange(20) < 8
    np.testing.assert_allclose(relative_to(values * [1, 10, 100, 0.1, 3], rows), relative_to(values, rows))
    assert resolve_reference(["AD", "AD", "NC"], "NC") == "cohort"    # one NC participant: the cohort instead
    assert resolve_reference(["AD", "NC", "NC"], "NC") == "NC"


def test_contrast_counts_only_positive_differences():
    reps = np.array([[2.0, -1.0, 0.0], [1.0, 0.5, -2.0]])
    np.testing.assert_allclose(topk_frequency(reps, 2, positive_only=True), [1.0, 0.5, 0.0])
    np.testing.assert_allclose(topk_frequency(reps, 2), [1.0, 0.5, 0.5])


def test_settings_accept_the_methods_and_refuse_others():
    settings = analysis_settings({"importance": "raw", "reference": "NC", "stage_contrast": True}, None)
    assert (settings.options.importance, settings.options.reference, settings.options.stage_contrast) == \
        ("raw", "NC", True)
    assert analysis_settings(None, None).options.importance == "per_snp"
    for bad in ({"importance": "magic"}, {"reference": "MCI"}, {"stage_contrast": "yes"}):
        with pytest.raises(UsageError):
            analysis_settings(bad, None)


@pytest.fixture(scope="module")
def tiny_features(tmp_path_factory):
    from helpers import make_tiny_cohort

    from rgenima_app.synthetic.features import cohort_features

    return cohort_features(make_tiny_cohort(tmp_path_factory.mktemp("controls") / "cohort", 80, seed=4))


def _control_recall(features, permute: bool) -> tuple[float, float]:
    from rgenima_app.analysis.controls import linear_control

    control = linear_control(features.volumes, features.dosages, features.snp_genes, features.diagnosis,
                             permute=permute, seed=0)
    n = len(features.diagnosis)
    analysis = analyse_cohort(control.roi_importance, np.zeros((n, len(ROIS), len(control.genes))),
                              features.diagnosis, ROIS, control.genes, [], control.gene_importance,
                              AnalysisOptions(n_boot=200, roi_top_k=10, gene_top=10),
                              snps_per_gene=control.snps_per_gene)
    rois = _selected(analysis.stage_rois, "AD")
    ranking = analysis.gene_ranking
    genes = set(ranking.loc[(ranking["group"] == "all") & ranking["stable"], "gene"])
    return (len(rois & set(features.planted_rois)) / len(features.planted_rois),
            len(genes & set(features.planted_genes)) / len(features.planted_genes))


def test_linear_positive_control_is_recovered_and_the_label_permuted_one_is_not(tiny_features):
    roi_recall, gene_recall = _control_recall(tiny_features, permute=False)
    assert roi_recall >= 0.8 and gene_recall >= 0.6
    roi_recall, gene_recall = _control_recall(tiny_features, permute=True)
    assert roi_recall <= 0.2 and gene_recall <= 0.2
