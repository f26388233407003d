"""Progression metrics against scikit-learn / numpy reference computations, and their bootstrap intervals."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import (balanced_accuracy_score, mean_absolute_error, mean_squared_error, recall_score,
                             roc_auc_score)

from rgenima_app.errors import ProcessingError
from rgenima_app.progression.metrics import conversion_metrics, regression_metrics


@pytest.fixture
def changes():
    rng = np.random.default_rng(4)
    true = np.round(np.concatenate([np.zeros(40), rng.uniform(0.1, 1.0, 30), rng.uniform(1.5, 6, 30),
                                    [-0.5, -1.0]]) * 2) / 2
    pred = true + rng.normal(0, 0.7, size=len(true))
    return true, pred


def test_regression_metrics_match_sklearn_overall_and_per_stratum(changes):
    true, pred = changes
    report = regression_metrics(true, pred, n_boot=200, seed=1)
    assert report.value("rmse") == pytest.approx(np.sqrt(mean_squared_error(true, pred)))
    assert report.value("mae") == pytest.approx(mean_absolute_error(true, pred))
    assert report.value("pearson_r") == pytest.approx(np.corrcoef(true, pred)[0, 1])
    strata = {"delta_lt_0": true < 0, "delta_0": true == 0, "delta_0_1": (true > 0) & (true <= 1),
              "delta_gt_1": true > 1}
    assert sum(m.sum() for m in strata.values()) == len(true)  # the strata cover everyone
    table = report.table.set_index("metric")
    for name, member in strata.items():
        assert member.any()
        assert table.loc[f"rmse_{name}", "value"] == pytest.approx(np.sqrt(mean_squared_error(true[member], pred[member])))
        assert table.loc[f"mae_{name}", "value"] == pytest.approx(mean_absolute_error(true[member], pred[member]))
        assert table.loc[f"rmse_{name}", "n"] == member.sum()


def test_regression_intervals_cover_the_value_and_are_reproducible(changes):
    true, pred = changes
    a = regression_metrics(true, pred, n_boot=300, seed=2).table.set_index("metric")
    b = regression_metrics(true, pred, n_boot=300, seed=2).table.set_index("metric")
    assert a.equals(b)
    for metric in ("rmse", "mae", "pearson_r", "rmse_delta_0", "rmse_delta_gt_1"):
        assert a.loc[metric, "ci_low"] < a.loc[metric, "value"] < a.loc[metric, "ci_high"]
    # the interval of the RMSE is the percentile interval of resampled RMSEs (reference loop)
    rng = np.random.default_rng(2)
    draws = rng.integers(0, len(true), size=(300, len(true)))
    reference = [np.sqrt(np.mean((pred[d] - true[d]) ** 2)) for d in draws]
    assert (a.loc["rmse", "ci_low"], a.loc["rmse", "ci_high"]) == pytest.approx(tuple(np.percentile(reference, [2.5, 97.5])))


def test_regression_groups_resample_participants_whole(changes):
    true, pred = changes
    doubled = regression_metrics(np.repeat(true, 2), np.repeat(pred, 2), n_boot=300, seed=3,
                                 groups=np.repeat([f"p{i:03d}" for i in range(len(true))], 2)).table.set_index("metric")
    single = regression_metrics(true, pred, n_boot=300, seed=3).table.set_index("metric")
    assert doubled.loc["rmse", "ci_low"] == pytest.approx(single.loc["rmse", "ci_low"])


def test_empty_strata_and_constant_predictions_give_nan_not_errors():
    report = regression_metrics([0.0, 0.0, 2.0], [0.5, 0.5, 0.5], n_boot=50).table.set_index("metric")
    assert np.isnan(report.loc["rmse_delta_lt_0", "value"]) and report.loc["rmse_delta_lt_0", "n"] == 0
    assert np.isnan(report.loc["pearson_r", "value"])
    assert report.loc["rmse", "value"] == pytest.approx(np.sqrt((0.25 + 0.25 + 2.25) / 3))
    with pytest.raises(ProcessingError, match="no participants"):
        regression_metrics([], [])
    with pytest.raises(ProcessingError, match="NaN"):
        regression_metrics([1.0, np.nan], [1.0, 1.0])


def test_conversion_metrics_match_sklearn():
    rng = np.random.default_rng(5)
    converted = rng.random(150) < 0.4
    probability = np.clip(0.4 + 0.3 * (converted - 0.4) + rng.normal(0, 0.2, 150), 0, 1)
    report = conversion_metrics(converted, probability, n_boot=300, seed=0)
    called = probability > 0.5
    assert report.value("auc") == pytest.approx(roc_auc_score(converted, probability))
    assert report.value("balanced_accuracy") == pytest.approx(balanced_accuracy_score(converted, called))
    assert report.value("sensitivity") == pytest.approx(recall_score(converted, called))
    assert report.value("specificity") == pytest.approx(recall_score(~converted, ~called))
    table = report.table.set_index("metric")
    assert table.loc["sensitivity", "n"] == converted.sum()
    for metric in ("auc", "balanced_accuracy", "sensitivity", "specificity"):
        assert table.loc[metric, "ci_low"] < table.loc[metric, "value"] < table.loc[metric, "ci_high"]
    assert set(report.to_dict()) == {"balanced_accuracy", "auc", "sensitivity", "specificity", "accuracy"}
    with pytest.raises(ProcessingError, match="outside"):
        conversion_metrics([True, False], [1.2, 0.1])
