"""Metrics of the progression targets, with participant-bootstrap confidence intervals.

ΔCDR-SB (``regression_metrics(delta_true, delta_predicted)``), one row per participant:

- ``rmse`` = sqrt(mean((predicted - true)^2)), ``mae`` = mean(|predicted - true|), ``pearson_r``
  (NaN when either side is constant), ``n``;
- the same RMSE and MAE within strata of the TRUE change (PerM-MoE's: no change, a small change, a large
  one; a decline in CDR-SB is rare but real, so it has a stratum of its own):
  ``delta_lt_0`` (Δ < 0), ``delta_0`` (Δ = 0), ``delta_0_1`` (0 < Δ ≤ 1), ``delta_gt_1`` (Δ > 1);
  a stratum without participants has NaN values.

Conversion (``conversion_metrics(converted, probability)``): the 2-class case of
``rgenima_app.analysis.metrics.classification_metrics`` with the labels ("stable", "converter"):
``balanced_accuracy``, ``auc``, ``sensitivity`` (recall of converters), ``specificity``, ``accuracy``.
A participant is called a converter when the probability is above 0.5.

Intervals: percentile bootstrap over participants (``bootstrap_weights`` of analysis/metrics.py, so
``groups`` keeps the rows of one participant together), ``n_boot`` resamples, seeded. A resample in
which a stratum is empty or the correlation is undefined leaves that metric out of that resample.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from rgenima_app.analysis.metrics import bootstrap_weights, classification_metrics
from rgenima_app.errors import ProcessingError

#: Strata of the true ΔCDR-SB: name -> (test on the true change, what it means).
STRATA = {
    "delta_lt_0": (lambda d: d < 0, "ΔCDR-SB < 0"),
    "delta_0": (lambda d: d == 0, "ΔCDR-SB = 0"),
    "delta_0_1": (lambda d: (d > 0) & (d <= 1), "0 < ΔCDR-SB ≤ 1"),
    "delta_gt_1": (lambda d: d > 1, "ΔCDR-SB > 1"),
}
CONVERSION_LABELS = ("stable", "converter")


@dataclass
class ProgressionReport:
    """One evaluation: metric, value, ci_low, ci_high (and n, the participants each metric is computed on)."""

    table: pd.DataFrame
    n: int
    n_boot: int
    ci: float

    def value(self, metric: str) -> float:
        return float(self.table.set_index("metric").loc[metric, "value"])

    def to_dict(self) -> dict:
        """``{metric: {"value", "ci_low", "ci_high", "n"}}``, NaN as None (JSON-ready)."""
        def clean(v):
            return None if pd.isna(v) else (int(v) if isinstance(v, (int, np.integer)) else float(v))
        return {row.metric: {k: clean(getattr(row, k)) for k in ("value", "ci_low", "ci_high", "n")}
                for row in self.table.itertuples(index=False)}


def _weighted_errors(true: np.ndarray, pred: np.ndarray, weights: np.ndarray, rows: np.ndarray) -> tuple:
    """RMSE and MAE over ``rows`` for each weighting (B, n) -> two (B,) arrays, NaN where the weight is 0."""
    w = weights[:, rows]
    total = w.sum(axis=1)
    err = pred[rows] - true[rows]
    with np.errstate(divide="ignore", invalid="ignore"):
        rmse = np.sqrt(np.where(total > 0, (w * err ** 2).sum(axis=1) / total, np.nan))
        mae = np.where(total > 0, (w * np.abs(err)).sum(axis=1) / total, np.nan)
    return rmse, mae


def _weighted_pearson(true: np.ndarray, pred: np.ndarray, weights: np.ndarray) -> np.ndarray:
    total = weights.sum(axis=1, keepdims=True)
    mx = (weights * true).sum(axis=1, keepdims=True) / total
    my = (weights * pred).sum(axis=1, keepdims=True) / total
    cov = (weights * (true - mx) * (pred - my)).sum(axis=1)
    vx = (weights * (true - mx) ** 2).sum(axis=1)
    vy = (weights * (pred - my) ** 2).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        # a constant side (no variance, up to rounding) has no correlation
        defined = (vx > 1e-12 * np.maximum(1.0, (weights * true ** 2).sum(axis=1))) & \
                  (vy > 1e-12 * np.maximum(1.0, (weights * pred ** 2).sum(axis=1)))
        return np.where(defined, cov / np.sqrt(vx * vy), np.nan)


def _regression_columns(true: np.ndarray, pred: np.ndarray, weights: np.ndarray) -> tuple[list[str], np.ndarray]:
    names, columns = [], []
    everyone = np.arange(len(true))
    rmse, mae = _weighted_errors(true, pred, weights, everyone)
    names += ["rmse", "mae", "pearson_r"]
    columns += [rmse, mae, _weighted_pearson(true, pred, weights)]
    for stratum, (member, _) in STRATA.items():
        rmse, mae = _weighted_errors(true, pred, weights, np.flatnonzero(member(true)))
        names += [f"rmse_{stratum}", f"mae_{stratum}"]
        columns += [rmse, mae]
    return names, np.stack(columns, axis=1)


def _intervals(boot: np.ndarray, ci: float) -> tuple[np.ndarray, np.ndarray]:
    low, high = np.full(boot.shape[1], np.nan), np.full(boot.shape[1], np.nan)
    defined = ~np.isnan(boot)
    for j in np.flatnonzero(defined.any(axis=0)):
        low[j], high[j] = np.percentile(boot[defined[:, j], j], [(1 - ci) / 2 * 100, (1 + ci) / 2 * 100])
    return low, high


def regression_metrics(delta_true: Sequence[float], delta_predicted: Sequence[float], n_boot: int = 1000,
                       seed: int = 0, ci: float = 0.95, groups: Sequence[str] | None = None) -> ProgressionReport:
    """RMSE, MAE (overall and per stratum of the true change) and Pearson r, with bootstrap CIs."""
    true, pred = np.asarray(delta_true, dtype=float), np.asarray(delta_predicted, dtype=float)
    if true.shape != pred.shape or true.ndim != 1:
        raise ProcessingError(f"progression metrics: {true.shape} true changes but {pred.shape} predictions")
    if not len(true):
        raise ProcessingError("progression metrics: no participants to evaluate",
                              hint="the held-out participants need a follow-up visit in the horizon window")
    if not (np.isfinite(true).all() and np.isfinite(pred).all()):
        raise ProcessingError("progression metrics: true or predicted changes contain NaN or infinite values")
    if not 0 < ci < 1:
        raise ProcessingError(f"progression metrics: confidence level {ci} is not between 0 and 1")
    names, values = _regression_columns(true, pred, np.ones((1, len(true))))
    low = high = np.full(len(names), np.nan)
    if n_boot > 0:
        boot = np.vstack([_regression_columns(true, pred, w)[1]
                          for w in bootstrap_weights(len(true), n_boot, seed, groups)])
        low, high = _intervals(boot, ci)
    counts = [len(true)] * 3 + [int(member(true).sum()) for member, _ in STRATA.values() for _ in (0, 1)]
    table = pd.DataFrame({"metric": names, "value": values[0], "ci_low": low, "ci_high": high, "n": counts})
    return ProgressionReport(table=table, n=len(true), n_boot=n_boot, ci=ci)


def conversion_metrics(converted: Sequence[bool], probability: Sequence[float], n_boot: int = 1000, seed: int = 0,
                       ci: float = 0.95, groups: Sequence[str] | None = None) -> ProgressionReport:
    """Balanced accuracy, AUC, sensitivity, specificity and accuracy of converter probabilities, with CIs."""
    converted = np.asarray(converted, dtype=bool)
    probability = np.asarray(probability, dtype=float)
    if converted.shape != probability.shape or converted.ndim != 1:
        raise ProcessingError(f"conversion metrics: {converted.shape} outcomes but {probability.shape} probabilities")
    if ((probability < 0) | (probability > 1)).any():
        raise ProcessingError("conversion metrics: probabilities outside [0, 1]")
    labels = np.array(CONVERSION_LABELS)[converted.astype(int)]
    # ties at exactly 0.5 go to "stable" (argmax takes the first label)
    report = classification_metrics(labels, np.stack([1 - probability, probability], axis=1),
                                    labels=CONVERSION_LABELS, n_boot=n_boot, seed=seed, ci=ci, groups=groups)
    source = report.table.set_index("metric")
    names = {"balanced_accuracy": "balanced_accuracy", "auc": "auc_converter", "sensitivity": "recall_converter",
             "specificity": "specificity_converter", "accuracy": "accuracy"}
    n_of = {"sensitivity": int(converted.sum()), "specificity": int((~converted).sum())}
    table = pd.DataFrame([{"metric": name, **source.loc[key, ["value", "ci_low", "ci_high"]].to_dict(),
                           "n": n_of.get(name, len(converted))} for name, key in names.items()])
    return ProgressionReport(table=table, n=len(converted), n_boot=n_boot, ci=ci)
