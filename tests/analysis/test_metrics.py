"""Classification metrics: hand-computed values, AUC with ties, bootstrap CIs, seeding, absent classes."""
from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest

from rgenima_app import STAGES
from rgenima_app.analysis.metrics import (
    _bootstrap,
    _weighted_auc,
    chance_check,
    classification_metrics,
    metric_names,
    summarize_folds,
)
from rgenima_app.errors import ProcessingError


def one_hot_proba(pred: list[str], labels=STAGES, confidence=0.7) -> np.ndarray:
    """Probabilities whose argmax is ``pred``."""
    rest = (1 - confidence) / (len(labels) - 1)
    proba = np.full((len(pred), len(labels)), rest)
    proba[np.arange(len(pred)), [labels.index(p) for p in pred]] = confidence
    return proba


def pairwise_auc(scores, positive) -> float:
    """Direct definition: over all (positive, negative) pairs, 1 if pos > neg, 1/2 if equal."""
    pos = [s for s, p in zip(scores, positive) if p]
    neg = [s for s, p in zip(scores, positive) if not p]
    if not pos or not neg:
        return float("nan")
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


TRUE = ["NC", "NC", "SMC", "MCI", "AD", "AD"]
PRED = ["NC", "SMC", "SMC", "MCI", "AD", "MCI"]


def test_hand_computed_counts():
    report = classification_metrics(TRUE, one_hot_proba(PRED), n_boot=0)
    v = report.value
    assert report.n == 6
    assert v("accuracy") == pytest.approx(4 / 6)
    assert v("balanced_accuracy") == pytest.approx((0.5 + 1 + 1 + 0.5) / 4)
    assert v("macro_f1") == pytest.approx(2 / 3)
    expected = {  # precision, recall, f1, specificity worked out from the confusion matrix by hand
        "NC": (1.0, 0.5, 2 / 3, 1.0),
        "SMC": (0.5, 1.0, 2 / 3, 4 / 5),
        "MCI": (0.5, 1.0, 2 / 3, 4 / 5),
        "AD": (1.0, 0.5, 2 / 3, 1.0),
    }
    for c, values in expected.items():
        got = (v(f"precision_{c}"), v(f"recall_{c}"), v(f"f1_{c}"), v(f"specificity_{c}"))
        assert got == pytest.approx(values), c
    confusion = report.confusion
    assert list(confusion.index) == list(STAGES) and list(confusion.columns) == list(STAGES)
    assert confusion.index.name == "true"
    assert confusion.loc["NC", "SMC"] == 1 and confusion.loc["AD", "MCI"] == 1
    assert confusion.to_numpy().sum() == 6 and np.trace(confusion.to_numpy()) == 4
    assert list(report.table.columns) == ["metric", "value", "ci_low", "ci_high"]
    assert list(report.table["metric"]) == metric_names()
    assert report.table["ci_low"].isna().all()  # n_boot=0: no interval


def test_auc_with_ties_hand_computed():
    # positives 0.8, 0.5; negatives 0.5, 0.2, 0.8: pairs 1, 1, 1/2, 1/2, 1, 0 -> 4/6
    scores = np.array([0.8, 0.5, 0.5, 0.2, 0.8])
    positive = np.array([True, True, False, False, False])
    assert _weighted_auc(scores, positive, np.ones((1, 5)))[0] == pytest.approx(4 / 6)
    # all scores tied: 1/2
    assert _weighted_auc(np.zeros(4), np.array([1, 0, 1, 0], bool), np.ones((1, 4)))[0] == 0.5
    # through the public function: class NC scores
    proba = np.full((5, 4), 0.05)
    proba[:, 0] = scores
    report = classification_metrics(["NC", "NC", "SMC", "MCI", "AD"], proba, n_boot=0)
    assert report.value("auc_NC") == pytest.approx(4 / 6)


def test_auc_matches_pairwise_definition_with_many_ties():
    rng = np.random.default_rng(3)
    y = rng.choice(STAGES, size=60)
    proba = np.round(rng.dirichlet(np.ones(4), size=60), 1)  # rounding makes many ties
    report = classification_metrics(y, proba, n_boot=0)
    aucs = []
    for j, c in enumerate(STAGES):
        expected = pairwise_auc(proba[:, j], y == c)
        aucs.append(expected)
        assert report.value(f"auc_{c}") == pytest.approx(expected)
    assert report.value("macro_auc") == pytest.approx(np.mean(aucs))


def test_weighted_metrics_equal_metrics_of_explicit_resample():
    """The vectorised bootstrap (counts as weights) equals computing each resample from scratch."""
    rng = np.random.default_rng(1)
    y = rng.choice(STAGES, size=25)
    proba = np.round(rng.dirichlet(np.ones(4), size=25), 2)
    truth = np.array([STAGES.index(v) for v in y])
    boot = _bootstrap(truth, proba.argmax(1), proba, n_boot=20, seed=7, groups=None)
    draws = np.random.default_rng(7).integers(0, 25, size=(20, 25))
    for b in range(20):
        direct = classification_metrics(y[draws[b]], proba[draws[b]], n_boot=0).table["value"].to_numpy()
        np.testing.assert_allclose(boot[b], direct, equal_nan=True)


def test_perfect_classifier_has_degenerate_intervals():
    y = list(STAGES) * 10
    proba = one_hot_proba(y)
    report = classification_metrics(y, proba, n_boot=300, seed=0)
    table = report.table.set_index("metric")
    assert (table["value"] == 1.0).all()
    assert (table["ci_low"] == 1.0).all() and (table["ci_high"] == 1.0).all()
    assert report.to_dict()["accuracy"] == {"value": 1.0, "ci_low": 1.0, "ci_high": 1.0}


def test_bootstrap_interval_brackets_value_and_is_seeded():
    rng = np.random.default_rng(0)
    y = rng.choice(STAGES, size=80)
    proba = rng.dirichlet(np.ones(4), size=80)
    proba[np.arange(80), [STAGES.index(v) for v in y]] += 0.3  # informative but imperfect
    a = classification_metrics(y, proba, n_boot=400, seed=11)
    b = classification_metrics(y, proba, n_boot=400, seed=11)
    c = classification_metrics(y, proba, n_boot=400, seed=12)
    pd.testing.assert_frame_equal(a.table, b.table)
    assert not np.allclose(a.table["ci_low"], c.table["ci_low"], equal_nan=True)
    t = a.table.set_index("metric")
    assert 0 < t.loc["accuracy", "ci_low"] < t.loc["accuracy", "value"] < t.loc["accuracy", "ci_high"] < 1
    # the interval of accuracy is about +-1.96 binomial standard errors wide
    acc = t.loc["accuracy", "value"]
    se = np.sqrt(acc * (1 - acc) / 80)
    width = t.loc["accuracy", "ci_high"] - t.loc["accuracy", "ci_low"]
    assert 0.7 * 3.92 * se < width < 1.3 * 3.92 * se


def test_absent_class_gives_nan_not_crash():
    y = ["NC", "MCI", "AD", "NC", "MCI", "AD"]          # no SMC in the truth
    pred = ["NC", "MCI", "AD", "SMC", "MCI", "NC"]      # SMC predicted once
    report = classification_metrics(y, one_hot_proba(pred), n_boot=100)
    v = report.value
    assert np.isnan(v("recall_SMC")) and np.isnan(v("auc_SMC"))
    assert v("precision_SMC") == 0.0 and v("f1_SMC") == 0.0   # predicted but never true: defined, 0
    assert v("specificity_SMC") == pytest.approx(5 / 6)
    assert v("balanced_accuracy") == pytest.approx((0.5 + 1 + 0.5) / 3)  # over the 3 present classes
    # macro F1 over the classes in truth or predictions (SMC included, as 0)
    f1 = [v(f"f1_{c}") for c in STAGES]
    assert v("macro_f1") == pytest.approx(np.mean(f1))
    assert report.to_dict()["recall_SMC"]["value"] is None
    json.dumps(report.to_dict())  # JSON-ready
    # a class neither true nor predicted: precision and f1 undefined
    report = classification_metrics(["NC", "AD"], one_hot_proba(["NC", "AD"]), n_boot=50)
    assert np.isnan(report.value("precision_SMC")) and np.isnan(report.value("f1_SMC"))
    assert report.value("macro_f1") == 1.0


def test_class_never_predicted_has_zero_precision():
    report = classification_metrics(["NC", "AD", "AD"], one_hot_proba(["NC", "NC", "NC"]), n_boot=0)
    assert report.value("precision_AD") == 0.0 and report.value("recall_AD") == 0.0
    assert np.isnan(report.value("f1_SMC"))


def test_single_class_truth():
    report = classification_metrics(["AD"] * 5, one_hot_proba(["AD"] * 4 + ["NC"]), n_boot=50)
    assert np.isnan(report.value("specificity_AD")) and np.isnan(report.value("macro_auc"))
    assert report.value("accuracy") == pytest.approx(0.8)


def test_argmax_ties_go_to_first_label():
    report = classification_metrics(["SMC"], np.array([[0.25, 0.25, 0.25, 0.25]]), n_boot=0)
    assert report.confusion.loc["SMC", "NC"] == 1


def test_group_bootstrap_keeps_sessions_together():
    y = ["NC", "NC", "AD", "AD", "MCI", "MCI"]
    groups = ["a", "a", "b", "b", "c", "c"]
    proba = one_hot_proba(["NC", "AD", "AD", "AD", "MCI", "NC"])
    report = classification_metrics(y, proba, n_boot=500, seed=0, groups=groups)
    t = report.table.set_index("metric")
    # each resample has 3 participants, 2 sessions each: accuracy is a multiple of 1/6 * 2 = ... of 1/6
    truth = np.array([STAGES.index(v) for v in y])
    boot = _bootstrap(truth, proba.argmax(1), proba, 200, 0, groups)
    acc = boot[:, 0]
    # participant a scores 1/2, b 1, c 1/2: accuracy of a resample is the mean over its 3 participants
    assert set(np.round(acc * 6).astype(int)) <= {3, 4, 5, 6}
    assert t.loc["accuracy", "value"] == pytest.approx(4 / 6)


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ProcessingError, match="outside"):
        classification_metrics(["NC", "XX"], one_hot_proba(["NC", "NC"]))
    with pytest.raises(ProcessingError, match="shape"):
        classification_metrics(["NC"], np.ones((1, 3)))
    with pytest.raises(ProcessingError, match="no samples"):
        classification_metrics([], np.zeros((0, 4)))
    with pytest.raises(ProcessingError, match="NaN"):
        classification_metrics(["NC"], np.array([[np.nan, 0, 0, 0]]))


def test_summarize_folds():
    folds = [
        classification_metrics(TRUE, one_hot_proba(PRED), n_boot=0),
        classification_metrics(TRUE, one_hot_proba(TRUE), n_boot=0),
        classification_metrics(["NC", "AD"], one_hot_proba(["NC", "AD"]), n_boot=0),  # no SMC/MCI
    ]
    summary = summarize_folds(folds).set_index("metric")
    assert list(summary.columns) == ["mean", "sd", "n_folds"]
    assert summary.loc["accuracy", "mean"] == pytest.approx(np.mean([4 / 6, 1, 1]))
    assert summary.loc["accuracy", "sd"] == pytest.approx(np.std([4 / 6, 1, 1], ddof=1))
    assert summary.loc["recall_SMC", "n_folds"] == 2
    assert summary.loc["recall_SMC", "mean"] == pytest.approx(1.0)
    one = summarize_folds(folds[:1]).set_index("metric")
    assert np.isnan(one.loc["accuracy", "sd"]) and one.loc["accuracy", "n_folds"] == 1


def test_bootstrap_speed_shape_500_participants():
    rng = np.random.default_rng(0)
    y = rng.choice(STAGES, size=500)
    proba = rng.dirichlet(np.ones(4), size=500)
    report = classification_metrics(y, proba, n_boot=1000, seed=0)
    t = report.table.set_index("metric")
    assert t["ci_low"].notna().all()
    assert (t["ci_low"] <= t["ci_high"]).all()
    assert 0.4 < t.loc["macro_auc", "value"] < 0.6  # random scores


# -- chance check ------------------------------------------------------------------------------------------
def _imbalanced_labels() -> list[str]:
    return ["AD"] * 10 + ["MCI"] * 6 + ["SMC"] * 4 + ["NC"] * 4


def test_constant_prediction_of_the_majority_class_does_not_beat_chance():
    """Always answering the most common stage reaches the majority rate, never more; the permutation
    statistic (balanced accuracy) is the same under every permutation, so p = 1."""
    y = _imbalanced_labels()
    proba = np.tile([0.1, 0.1, 0.2, 0.6], (len(y), 1))  # always AD
    check = chance_check(y, proba, n_permutations=500, seed=3)
    assert check.accuracy == pytest.approx(10 / 24) and check.majority_rate == pytest.approx(10 / 24)
    assert check.majority_class == "AD"
    assert check.observed == pytest.approx(0.25) and check.p_value == pytest.approx(1.0)
    assert check.beats_chance is False


def test_random_probabilities_do_not_beat_chance_and_perfect_ones_do():
    y = _imbalanced_labels()
    truth = np.array([STAGES.index(v) for v in y])
    perfect = chance_check(y, np.eye(4)[truth] * 0.7 + 0.075, n_permutations=999, seed=0)
    assert perfect.accuracy == 1.0 and perfect.beats_chance
    assert perfect.p_value == pytest.approx(1 / 1000)  # no permutation of 24 labels reaches 1.0 here
    rng = np.random.default_rng(11)
    at_chance = [chance_check(y, rng.dirichlet(np.ones(4), len(y)), n_permutations=300, seed=k) for k in range(20)]
    assert sum(c.beats_chance for c in at_chance) <= 3  # alpha 0.05: about 1 in 20 by luck
    assert np.mean([c.null_mean for c in at_chance]) == pytest.approx(0.25, abs=0.02)  # E[balanced acc.] = 1/K


def test_accuracy_above_the_majority_rate_is_needed_even_when_significant():
    """Labels 20 AD / 4 NC; a model that gets every NC right but calls 6 of 20 AD 'NC' has balanced
    accuracy 0.85 (significant) but accuracy 0.75 < majority rate 0.833: it does not beat chance."""
    y = ["AD"] * 20 + ["NC"] * 4
    predicted = ["AD"] * 14 + ["NC"] * 6 + ["NC"] * 4
    proba = np.eye(4)[[STAGES.index(v) for v in predicted]]
    check = chance_check(y, proba, n_permutations=999, seed=1)
    assert check.observed == pytest.approx(0.85) and check.p_value <= 0.05
    assert check.accuracy == pytest.approx(0.75) and check.majority_rate == pytest.approx(20 / 24)
    assert not check.beats_chance


def test_chance_check_is_seeded_and_permutes_whole_participants():
    y = ["NC", "NC", "AD", "AD", "MCI", "MCI", "SMC", "SMC"] * 2
    groups = [f"p{i // 2}" for i in range(len(y))]  # two sessions per participant, one label each
    proba = np.random.default_rng(2).dirichlet(np.ones(4), len(y))
    a = chance_check(y, proba, n_permutations=200, seed=5, groups=groups)
    b = chance_check(y, proba, n_permutations=200, seed=5, groups=groups)
    assert a == b and a.unit == "participant"
    assert chance_check(y, proba, n_permutations=200, seed=5).unit == "sample"
    # a participant whose sessions have different labels cannot be permuted whole: samples are
    assert chance_check(y, proba, n_permutations=50, groups=["p0"] * len(y)).unit == "sample"
    assert json.loads(json.dumps(a.to_dict()))["beats_chance"] == a.beats_chance
    with pytest.raises(ProcessingError, match="permutations"):
        chance_check(y, proba, n_permutations=0)
    with pytest.raises(ProcessingError, match="significance"):
        chance_check(y, proba, alpha=1.5)
