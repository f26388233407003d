"""Stage-specific ROIs: top-k frequency, the shared/unique pattern, and recovery of planted ROIs."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rgenima_app.analysis.stage_rois import sharing_pattern, stage_specific_rois, topk_frequency

from .planted import OPTIONS, PLANTED_ROIS, make_cohort


def test_topk_frequency_by_hand():
    reps = np.array([[5.0, 4.0, 1.0, 0.0], [1.0, 4.0, 5.0, 0.0], [5.0, 1.0, 4.0, 0.0], [5.0, 4.0, 0.0, 1.0]])
    np.testing.assert_allclose(topk_frequency(reps, 2), [0.75, 0.75, 0.5, 0.0])
    np.testing.assert_allclose(topk_frequency(reps, 4), [1.0, 1.0, 1.0, 1.0])
    with pytest.raises(ValueError):
        topk_frequency(reps, 0)


def test_sharing_pattern():
    rows = [("SMC", "A", True, 1), ("MCI", "A", True, 1), ("AD", "A", True, 1), ("SMC", "B", True, 2),
            ("AD", "B", True, 2), ("MCI", "C", True, 2), ("AD", "D", False, 3), ("NC", "E", True, 1)]
    table = pd.DataFrame(rows, columns=["group", "roi", "selected", "rank"])
    pattern = sharing_pattern(table).set_index("roi")
    assert pattern.loc["A", "pattern"] == "shared by all" and pattern.loc["A", "n_stages"] == 3
    assert pattern.loc["B", "pattern"] == "SMC + AD"
    assert pattern.loc["C", "pattern"] == "MCI only"
    assert "D" not in pattern.index and "E" not in pattern.index  # not selected / not a disease stage


def _recall(stage_table: pd.DataFrame, stage: str) -> float:
    chosen = set(stage_table[(stage_table["group"] == stage) & stage_table["selected"]]["roi"])
    return len(chosen & set(PLANTED_ROIS[stage])) / len(PLANTED_ROIS[stage])


def test_planted_rois_recovered_above_random_attention(planted_analysis):
    random = make_cohort(effect=0.0)
    random_table = stage_specific_rois(random.roi_importance, random.groups, random.roi_names,
                                       k=OPTIONS.roi_top_k, n_boot=OPTIONS.n_boot, seed=OPTIONS.seed)
    for stage in PLANTED_ROIS:
        assert _recall(planted_analysis.stage_rois, stage) == 1.0
        assert _recall(random_table, stage) <= 0.4
    # with planted signal, each stage selects about its planted ROIs (the paper found 5-6)
    per_stage = planted_analysis.stage_rois.groupby("group")["selected"].sum()
    assert all(len(PLANTED_ROIS[s]) <= per_stage[s] <= len(PLANTED_ROIS[s]) + 2 for s in PLANTED_ROIS)
    pattern = planted_analysis.sharing.set_index("roi")
    assert pattern.loc["Left-Thalamus", "pattern"] == "shared by all"
    assert pattern.loc["Left-Caudate", "pattern"] == "SMC + AD"
    assert pattern.loc["Left-Putamen", "pattern"] == "SMC only"
