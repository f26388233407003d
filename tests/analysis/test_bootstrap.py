"""Bootstrap stability (paper eqs. 13-17): agreement with a direct loop, seeding, edge cases, tables."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rgenima_app.analysis.bootstrap import (
    bootstrap, bootstrap_by_group, bootstrap_counts, draw_counts, group_rng, ordered_groups,
    roi_gene_stability_table, roi_stability_table, stability_ratio,
)

# A hand-made, skewed distribution of attention: 9 participants x 3 features.
HAND = np.array([
    [0.10, 0.50, 2.0], [0.12, 0.40, 0.0], [0.30, 0.45, 1.0], [0.11, 0.52, 0.0], [0.90, 0.47, 4.0],
    [0.15, 0.49, 0.0], [0.13, 0.51, 1.0], [0.20, 0.44, 0.5], [0.14, 0.50, 3.0],
])


def loop_bootstrap(values: np.ndarray, indices: list[np.ndarray]):
    """Eqs. 14-17 computed the slow, obvious way: one resample and one feature at a time."""
    n_features = values.shape[1]
    means = np.array([[values[idx, f].mean() for f in range(n_features)] for idx in indices])
    out = []
    for f in range(n_features):
        column = sorted(means[:, f])
        mean = sum(column) / len(column)
        low, high = np.percentile(column, 2.5), np.percentile(column, 97.5)
        out.append((mean, low, high, mean / (high - low)))
    return np.array(out)


def test_stability_equals_a_direct_loop():
    counts = draw_counts(len(HAND), 500, np.random.default_rng(3))
    indices = [np.repeat(np.arange(len(HAND)), row) for row in counts]  # the resamples, participant by participant
    expected = loop_bootstrap(HAND, indices)
    got = bootstrap_counts(HAND, counts)
    np.testing.assert_allclose(got.mean, expected[:, 0], rtol=1e-12)
    np.testing.assert_allclose(got.ci_low, expected[:, 1], rtol=1e-12)
    np.testing.assert_allclose(got.ci_high, expected[:, 2], rtol=1e-12)
    np.testing.assert_allclose(got.stability, expected[:, 3], rtol=1e-10)
    # and the feature-chunked path gives the same numbers
    chunked = bootstrap_counts(HAND, counts, chunk=1)
    np.testing.assert_allclose(chunked.stability, got.stability, rtol=1e-12)


def test_resample_counts_are_draws_with_replacement():
    counts = draw_counts(50, 2000, np.random.default_rng(0))
    assert counts.shape == (2000, 50) and (counts.sum(axis=1) == 50).all()
    # each participant is drawn once per resample on average, Binomial(50, 1/50) variance ~0.98
    assert abs(counts.mean() - 1.0) < 1e-12
    assert 0.9 < counts.var() < 1.06
    assert draw_counts(50, 3, np.random.default_rng(0), sample_size=1000).sum(axis=1).tolist() == [1000] * 3


def test_bootstrap_mean_is_close_to_sample_mean_and_ci_covers_it():
    values = np.random.default_rng(1).gamma(2.0, size=(400, 5))
    res = bootstrap(values, n_boot=1000, seed=0)
    np.testing.assert_allclose(res.mean, values.mean(axis=0), rtol=0.01)
    assert (res.ci_low < values.mean(axis=0)).all() and (values.mean(axis=0) < res.ci_high).all()
    # the CI width is about 2 * 1.96 standard errors
    se = values.std(axis=0, ddof=1) / np.sqrt(len(values))
    np.testing.assert_allclose(res.ci_high - res.ci_low, 3.92 * se, rtol=0.15)


def test_zero_width_interval_gives_nan_stability():
    constant = np.full((6, 2), 0.25)
    res = bootstrap(constant, n_boot=100, seed=0)
    assert res.mean.tolist() == pytest.approx([0.25, 0.25]) and np.isnan(res.stability).all()
    single = bootstrap(np.array([[0.3, 0.0]]), n_boot=50, seed=0)
    assert np.isnan(single.stability).all() and single.mean.tolist() == pytest.approx([0.3, 0.0])
    assert stability_ratio(np.array([1.0, 0.0]), np.array([0.5, 0.0]), np.array([1.5, 0.0])).tolist()[0] == 1.0


def test_same_seed_identical_other_seed_different():
    values = np.random.default_rng(2).random((40, 109, 6))
    groups = ["AD"] * 15 + ["NC"] * 25
    a = bootstrap_by_group(values, groups, n_boot=200, seed=42)
    b = bootstrap_by_group(values, groups, n_boot=200, seed=42)
    c = bootstrap_by_group(values, groups, n_boot=200, seed=43)
    for g in ("AD", "NC"):
        for field in ("mean", "ci_low", "ci_high", "stability"):
            np.testing.assert_array_equal(getattr(a[g], field), getattr(b[g], field))
        assert not np.array_equal(a[g].ci_low, c[g].ci_low)


def test_a_group_result_does_not_depend_on_the_other_groups():
    values = np.random.default_rng(4).random((30, 4))
    groups = ["AD"] * 10 + ["MCI"] * 20
    together = bootstrap_by_group(values, groups, n_boot=100, seed=1)["AD"]
    alone = bootstrap_by_group(values[:10], groups[:10], n_boot=100, seed=1)["AD"]
    np.testing.assert_array_equal(together.stability, alone.stability)
    assert not np.array_equal(group_rng(1, "AD").random(3), group_rng(1, "MCI").random(3))


def test_groups_in_disease_order_and_missing_labels_left_out():
    assert ordered_groups(["AD", "x", "NC", "MCI", None, "SMC", "AD"]) == ["NC", "SMC", "MCI", "AD", "x"]
    res = bootstrap_by_group(np.ones((3, 2)), ["AD", None, "AD"], n_boot=10, seed=0)
    assert list(res) == ["AD"] and res["AD"].n == 2


def test_tidy_tables_follow_the_arrays():
    rng = np.random.default_rng(5)
    rois, genes = ["r1", "r2", "r3"], ["G1", "G2"]
    pair = rng.random((12, 3, 2))
    pair[:, 1, 0] += 5.0  # make (r2, G1) stand out
    groups = ["AD"] * 6 + ["NC"] * 6
    table = roi_gene_stability_table(pair, groups, rois, genes, n_boot=100, seed=0)
    assert list(table.columns) == ["group", "n", "roi", "gene", "mean", "ci_low", "ci_high", "stability"]
    assert len(table) == 2 * 3 * 2 and set(table["n"]) == {6}
    ad = table[table["group"] == "AD"].set_index(["roi", "gene"])
    assert ad["mean"].idxmax() == ("r2", "G1")
    np.testing.assert_allclose(ad.loc[("r2", "G1"), "mean"], pair[:6, 1, 0].mean(), rtol=0.05)
    roi_table = roi_stability_table(pair[:, :, 0], groups, rois, n_boot=100, seed=0)
    assert list(roi_table["roi"][:3]) == rois and (roi_table["ci_low"] <= roi_table["ci_high"]).all()
    with pytest.raises(ValueError, match="109|3"):
        roi_stability_table(pair[:, :2, 0], groups, rois)
    with pytest.raises(ValueError):
        roi_gene_stability_table(pair, groups, rois, genes[:1])
    assert isinstance(table, pd.DataFrame)
