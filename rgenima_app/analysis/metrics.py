"""Classification metrics of the paper's Tables 1-5, with participant-bootstrap confidence intervals.

``classification_metrics(y_true, proba)`` evaluates 4-way stage predictions (the prediction is the
argmax of ``proba``; ties go to the first label in ``labels`` order) and returns a ``MetricsReport``:
one row per metric with its value on the sample and a percentile bootstrap interval.

Metrics (``c`` is each label):

- ``accuracy``: correct / n.
- ``macro_f1``: mean of ``f1_<c>`` over the classes where it is defined, i.e. the classes that occur
  in the true labels or in the predictions (scikit-learn's ``f1_score(average="macro")``).
- ``balanced_accuracy``: mean of ``recall_<c>`` over the classes present in the true labels
  (scikit-learn's ``balanced_accuracy_score``).
- ``macro_auc``: mean of ``auc_<c>`` over the classes with both positives and negatives.
- ``precision_<c>`` = TP / (TP + FP); when ``c`` is never predicted: 0 if ``c`` occurs in the true
  labels (all of them were missed), NaN if it does not occur either.
- ``recall_<c>`` = TP / (TP + FN) (sensitivity); NaN when ``c`` does not occur in the true labels.
- ``f1_<c>`` = 2 TP / (2 TP + FP + FN); NaN when ``c`` neither occurs nor is predicted.
- ``specificity_<c>`` = TN / (TN + FP); NaN when every participant has label ``c``.
- ``auc_<c>``: one-vs-rest ROC AUC from the rank (Mann-Whitney) formula with ties counted one half:
  P(score of a positive > score of a negative) + 0.5 P(equal); NaN without positives or negatives.

Confidence intervals: ``n_boot`` resamples of participants with replacement (seeded; when ``groups``
is given, groups -- participants with several sessions -- are resampled whole), every metric computed
on every resample at once from weighted counts (no Python loop over resamples), and the
``(1-ci)/2`` and ``(1+ci)/2`` percentiles of the resampled values that are defined (NaN in a resample
that lacks a class is left out). No scikit-learn.

Chance check (``chance_check``): does the model beat what a classifier that learned nothing would
reach on the same held-out participants? Two conditions, both required:

- its accuracy is above the **majority-class rate** (the accuracy of always answering the most
  frequent true stage of the held-out participants), and
- a **label-permutation test** rejects "predictions independent of the true stage": the true labels
  are permuted ``n_permutations`` times (seeded; whole participants when ``groups`` is given and every
  participant has one label), the **balanced accuracy** of the fixed predictions is computed for each,
  and p = (1 + #{permuted >= observed}) / (1 + n_permutations) must be <= ``alpha``.

Balanced accuracy is the permutation statistic because it is not inflated by class imbalance: any
prediction independent of the labels has expected balanced accuracy 1/K, and a model that answers one
stage for everyone gets exactly the same value under every permutation (p = 1), however common that
stage is. The majority-rate condition covers what the user reads first, the accuracy.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from rgenima_app import STAGES
from rgenima_app.errors import ProcessingError

#: Bootstrap rows computed at once: (resamples in a chunk) x n stays below this many numbers.
_CHUNK_CELLS = 2_000_000


@dataclass
class MetricsReport:
    """Metrics of one evaluation: the table, the confusion matrix and the number of samples."""

    table: pd.DataFrame        # metric, value, ci_low, ci_high
    confusion: pd.DataFrame    # counts: index = true label ("true"), columns = predicted label
    n: int
    n_boot: int = 0
    ci: float = 0.95
    labels: tuple[str, ...] = field(default=STAGES)

    def to_dict(self) -> dict:
        """``{metric: {"value": v, "ci_low": lo, "ci_high": hi}}`` with NaN as None (JSON-ready)."""
        return {row.metric: {k: _json_float(getattr(row, k)) for k in ("value", "ci_low", "ci_high")}
                for row in self.table.itertuples(index=False)}

    def value(self, metric: str) -> float:
        """The point value of one metric."""
        return float(self.table.set_index("metric").loc[metric, "value"])


def _json_float(value) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value


def metric_names(labels: Sequence[str] = STAGES) -> list[str]:
    """Names of the metrics in table order."""
    names = ["accuracy", "macro_f1", "balanced_accuracy", "macro_auc"]
    for kind in ("precision", "recall", "f1", "specificity", "auc"):
        names += [f"{kind}_{c}" for c in labels]
    return names


def _check(y_true: Sequence[str], proba: np.ndarray, labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    labels = list(labels)
    proba = np.asarray(proba, dtype=float)
    y = [str(v) for v in y_true]
    if proba.ndim != 2 or proba.shape[1] != len(labels):
        raise ProcessingError(f"metrics: probabilities have shape {proba.shape}, expected (n, {len(labels)}) "
                              f"in the order {', '.join(labels)}")
    if proba.shape[0] != len(y):
        raise ProcessingError(f"metrics: {len(y)} true labels but {proba.shape[0]} probability rows")
    if not y:
        raise ProcessingError("metrics: no samples to evaluate", hint="evaluation needs labelled held-out participants")
    if not np.isfinite(proba).all():
        raise ProcessingError("metrics: probabilities contain NaN or infinite values")
    index = {c: i for i, c in enumerate(labels)}
    unknown = sorted({v for v in y if v not in index})
    if unknown:
        raise ProcessingError(f"metrics: true labels outside {', '.join(labels)}: {', '.join(unknown)}")
    return np.array([index[v] for v in y]), proba


def _confusion_metrics(confusion: np.ndarray) -> dict[str, np.ndarray]:
    """Count-based metrics of a stack of confusion matrices (B, K, K) -> arrays of shape (B,) / (B, K)."""
    c = confusion.astype(float)
    total = c.sum(axis=(1, 2))
    tp = np.diagonal(c, axis1=1, axis2=2)
    support = c.sum(axis=2)          # true counts
    predicted = c.sum(axis=1)        # predicted counts
    fp, fn = predicted - tp, support - tp
    tn = total[:, None] - tp - fp - fn
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, np.where(support > 0, 0.0, np.nan))
        recall = np.where(support > 0, tp / support, np.nan)
        f1_den = 2 * tp + fp + fn
        f1 = np.where(f1_den > 0, 2 * tp / f1_den, np.nan)
        negatives = tn + fp
        specificity = np.where(negatives > 0, tn / negatives, np.nan)
        accuracy = np.where(total > 0, tp.sum(axis=1) / total, np.nan)
    return {"accuracy": accuracy, "macro_f1": _nanmean(f1), "balanced_accuracy": _nanmean(recall),
            "precision": precision, "recall": recall, "f1": f1, "specificity": specificity}


def _nanmean(values: np.ndarray) -> np.ndarray:
    """Row mean over the defined (non-NaN) entries; NaN when none is defined (no warning)."""
    defined = ~np.isnan(values)
    count = defined.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(count > 0, np.where(defined, values, 0.0).sum(axis=1) / count, np.nan)


def _weighted_auc(scores: np.ndarray, positive: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """One-vs-rest AUC of every weighting at once (Mann-Whitney with ties = 1/2).

    ``scores``, ``positive``: (n,); ``weights``: (B, n) nonnegative (bootstrap counts). Returns (B,).
    """
    values, inverse = np.unique(scores, return_inverse=True)
    m, b = len(values), weights.shape[0]
    flat = (np.arange(b)[:, None] * m + inverse[None, :]).ravel()
    pos = np.bincount(flat, weights=(weights * positive).ravel(), minlength=b * m).reshape(b, m)
    neg = np.bincount(flat, weights=(weights * ~positive).ravel(), minlength=b * m).reshape(b, m)
    below = np.cumsum(neg, axis=1) - neg                  # negative weight with a strictly lower score
    wins = (pos * (below + 0.5 * neg)).sum(axis=1)
    pairs = pos.sum(axis=1) * neg.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(pairs > 0, wins / pairs, np.nan)


def _all_metrics(truth: np.ndarray, pred: np.ndarray, proba: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Every metric for every weighting (B, n) -> (B, n_metrics), in ``metric_names`` order."""
    k = proba.shape[1]
    cell = np.zeros((len(truth), k * k))
    cell[np.arange(len(truth)), truth * k + pred] = 1.0
    confusion = (weights @ cell).reshape(-1, k, k)
    counts = _confusion_metrics(confusion)
    auc = np.stack([_weighted_auc(proba[:, j], truth == j, weights) for j in range(k)], axis=1)
    columns = [counts["accuracy"], counts["macro_f1"], counts["balanced_accuracy"], _nanmean(auc)]
    for kind in ("precision", "recall", "f1", "specificity"):
        columns += list(counts[kind].T)
    columns += list(auc.T)
    return np.stack(columns, axis=1)


def classification_metrics(y_true: Sequence[str], proba: np.ndarray, labels: Sequence[str] = STAGES,
                           n_boot: int = 1000, seed: int = 0, ci: float = 0.95,
                           groups: Sequence[str] | None = None) -> MetricsReport:
    """Metrics of argmax predictions with percentile bootstrap CIs (see the module docstring).

    ``proba`` is (n, len(labels)) in ``labels`` order. ``groups`` (optional, one id per row): resample
    these (participants) rather than rows, so that several sessions of one participant stay together.
    Same inputs and seed give the same intervals.
    """
    labels = tuple(labels)
    truth, proba = _check(y_true, proba, labels)
    if not 0 < ci < 1:
        raise ProcessingError(f"metrics: confidence level {ci} is not between 0 and 1")
    n, k = proba.shape
    pred = proba.argmax(axis=1)
    names = metric_names(labels)
    values = _all_metrics(truth, pred, proba, np.ones((1, n)))[0]
    low = np.full(len(names), np.nan)
    high = np.full(len(names), np.nan)
    if n_boot > 0:
        boot = _bootstrap(truth, pred, proba, n_boot, seed, groups)
        defined = ~np.isnan(boot)
        q = [(1 - ci) / 2 * 100, (1 + ci) / 2 * 100]
        for j in np.flatnonzero(defined.any(axis=0)):
            low[j], high[j] = np.percentile(boot[defined[:, j], j], q)
    table = pd.DataFrame({"metric": names, "value": values, "ci_low": low, "ci_high": high})
    confusion = np.zeros((k, k), dtype=int)
    np.add.at(confusion, (truth, pred), 1)
    confusion_table = pd.DataFrame(confusion, index=pd.Index(labels, name="true"),
                                   columns=pd.Index(labels, name="predicted"))
    return MetricsReport(table=table, confusion=confusion_table, n=n, n_boot=n_boot, ci=ci, labels=labels)


def _bootstrap(truth: np.ndarray, pred: np.ndarray, proba: np.ndarray, n_boot: int, seed: int,
               groups: Sequence[str] | None) -> np.ndarray:
    """(n_boot, n_metrics) metric values on participant resamples; drawn in one go, computed in chunks."""
    return np.vstack([_all_metrics(truth, pred, proba, weights)
                      for weights in bootstrap_weights(len(truth), n_boot, seed, groups)])


def bootstrap_weights(n: int, n_boot: int, seed: int, groups: Sequence[str] | None = None):
    """The participant bootstrap as row weights: yields (resamples, n) arrays, ``n_boot`` rows in all.

    Each resample draws units (the ``groups``, i.e. participants, when given; else rows) with replacement;
    a row's weight is how often its unit was drawn. Drawn in one go from ``seed``, yielded in chunks of
    at most ``_CHUNK_CELLS`` numbers, so every metric built on these weights sees the same resamples."""
    rng = np.random.default_rng(seed)
    if groups is None:
        unit_of_row, n_units = np.arange(n), n
    else:
        if len(groups) != n:
            raise ProcessingError(f"metrics: {len(groups)} group ids for {n} samples")
        _, unit_of_row = np.unique(np.asarray([str(g) for g in groups]), return_inverse=True)
        n_units = int(unit_of_row.max()) + 1
    draws = rng.integers(0, n_units, size=(n_boot, n_units))
    chunk = max(1, _CHUNK_CELLS // max(n, n_units))
    for start in range(0, n_boot, chunk):
        part = draws[start:start + chunk]
        rows = np.arange(len(part))[:, None] * n_units + part
        unit_weights = np.bincount(rows.ravel(), minlength=len(part) * n_units).reshape(len(part), n_units)
        yield unit_weights[:, unit_of_row].astype(float)


def summarize_folds(reports: Sequence[MetricsReport]) -> pd.DataFrame:
    """k-fold summary: per metric the mean and sample sd (ddof=1) over the folds where it is defined.

    Columns: metric, mean, sd, n_folds (folds with a defined value; sd is NaN with fewer than 2).
    """
    if not reports:
        raise ProcessingError("metrics: no fold reports to summarise")
    names = list(reports[0].table["metric"])
    values = pd.DataFrame({i: r.table.set_index("metric")["value"].reindex(names) for i, r in enumerate(reports)})
    counts = values.notna().sum(axis=1)
    return pd.DataFrame({"metric": names,
                         "mean": values.mean(axis=1, skipna=True).to_numpy(),
                         "sd": values.std(axis=1, ddof=1, skipna=True).where(counts >= 2).to_numpy(),
                         "n_folds": counts.to_numpy()})


@dataclass
class ChanceCheck:
    """The chance check of one model on its held-out samples (module docstring, "Chance check")."""

    beats_chance: bool
    accuracy: float
    majority_rate: float
    majority_class: str
    statistic: str              # the permutation statistic ("balanced_accuracy")
    observed: float             # its value on the true labels
    null_mean: float            # its mean over the permutations
    p_value: float
    n_permutations: int
    alpha: float
    seed: int
    n: int
    unit: str                   # what was permuted: "participant" or "sample"

    def to_dict(self) -> dict:
        """JSON-ready (NaN as None), as stored in the bundle's ``metrics.chance``."""
        return {k: (_json_float(v) if isinstance(v, float) else v) for k, v in asdict(self).items()}


#: The statistic of the permutation test (see the module docstring for why).
CHANCE_STATISTIC = "balanced_accuracy"


def chance_check(y_true: Sequence[str], proba: np.ndarray, labels: Sequence[str] = STAGES,
                 n_permutations: int = 1000, alpha: float = 0.05, seed: int = 0,
                 groups: Sequence[str] | None = None) -> ChanceCheck:
    """Whether argmax predictions of ``proba`` beat chance on these samples (module docstring)."""
    labels = tuple(labels)
    truth, proba = _check(y_true, proba, labels)
    if n_permutations < 1:
        raise ProcessingError(f"chance check: {n_permutations} permutations; at least 1 is needed")
    if not 0 < alpha < 1:
        raise ProcessingError(f"chance check: significance level {alpha} is not between 0 and 1")
    n, k = proba.shape
    pred = proba.argmax(axis=1)
    counts = np.bincount(truth, minlength=k)
    accuracy = float((pred == truth).mean())
    majority = int(counts.argmax())  # ties: the first label in ``labels`` order
    rng = np.random.default_rng(seed)
    unit_rows, unit_labels, unit = _permutation_units(truth, groups)
    draws = np.argsort(rng.random((n_permutations, len(unit_labels))), axis=1)
    permuted = np.empty((n_permutations, n), dtype=int)
    for u, rows in enumerate(unit_rows):  # unit u takes the label of unit draws[:, u]
        permuted[:, rows] = unit_labels[draws[:, u]][:, None]
    observed = float(_balanced_accuracy(truth[None, :], pred, k)[0])
    null = _balanced_accuracy(permuted, pred, k)
    p_value = float((1 + np.sum(null >= observed - 1e-12)) / (1 + n_permutations))
    return ChanceCheck(beats_chance=bool(accuracy > counts[majority] / n and p_value <= alpha),
                       accuracy=accuracy, majority_rate=float(counts[majority] / n), majority_class=labels[majority],
                       statistic=CHANCE_STATISTIC, observed=observed, null_mean=float(null.mean()),
                       p_value=p_value, n_permutations=int(n_permutations), alpha=float(alpha), seed=int(seed),
                       n=int(n), unit=unit)


def _permutation_units(truth: np.ndarray, groups: Sequence[str] | None) -> tuple[list[np.ndarray], np.ndarray, str]:
    """Rows of each exchangeable unit and its label: participants (sessions keep their participant's
    label together) when every participant has one label, else single samples."""
    n = len(truth)
    if groups is not None:
        if len(groups) != n:
            raise ProcessingError(f"chance check: {len(groups)} group ids for {n} samples")
        _, unit_of_row = np.unique(np.asarray([str(g) for g in groups]), return_inverse=True)
        rows = [np.flatnonzero(unit_of_row == u) for u in range(int(unit_of_row.max()) + 1)]
        if all(len(set(truth[r])) == 1 for r in rows):
            return rows, np.array([truth[r[0]] for r in rows]), "participant"
    return [np.array([i]) for i in range(n)], truth.copy(), "sample"


def _balanced_accuracy(truth: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    """Balanced accuracy (mean recall over the classes present) of one prediction against each row of
    ``truth`` (B, n) -> (B,). Permutations keep the class counts, so one set of counts serves all rows."""
    counts = np.bincount(truth[0], minlength=k).astype(float)
    hits = np.stack([((truth == c) & (pred == c)[None, :]).sum(axis=1) for c in range(k)], axis=1)
    present = counts > 0
    return (hits[:, present] / counts[present]).mean(axis=1)


# -- curves of the group report: one-vs-rest ROC and reliability ---------------------------------------
def one_vs_rest_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """The ROC AUC of ``auc_<c>`` (Mann-Whitney, ties = 1/2) for one class; NaN without both kinds."""
    scores, positive = np.asarray(scores, dtype=float), np.asarray(positive, dtype=bool)
    return float(_weighted_auc(scores, positive, np.ones((1, len(scores))))[0])


def roc_curve(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates at every distinct score used as threshold (``score >= t`` is called
    positive), from (0, 0) to (1, 1); tied scores move both rates at once, so the area under the curve
    (trapezoids) is ``one_vs_rest_auc``."""
    scores, positive = np.asarray(scores, dtype=float), np.asarray(positive, dtype=bool)
    thresholds = np.unique(scores)[::-1]
    called = scores[None, :] >= thresholds[:, None]
    n_pos, n_neg = max(int(positive.sum()), 1), max(int((~positive).sum()), 1)
    tpr = (called & positive).sum(axis=1) / n_pos
    fpr = (called & ~positive).sum(axis=1) / n_neg
    return np.concatenate([[0.0], fpr]), np.concatenate([[0.0], tpr])


def reliability(probability: np.ndarray, positive: np.ndarray, n_bins: int = 5) -> pd.DataFrame:
    """Calibration of one class's predicted probability: equal-width bins of ``probability`` on [0, 1] with
    ``n`` samples, their mean predicted probability and the observed fraction of the class (empty bins left
    out). A calibrated model has observed = predicted."""
    probability, positive = np.asarray(probability, dtype=float), np.asarray(positive, dtype=bool)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(probability, edges[1:-1]), 0, n_bins - 1)
    rows = [{"low": edges[b], "high": edges[b + 1], "n": int((which == b).sum()),
             "predicted": float(probability[which == b].mean()), "observed": float(positive[which == b].mean())}
            for b in range(n_bins) if (which == b).any()]
    return pd.DataFrame(rows, columns=["low", "high", "n", "predicted", "observed"])
