"""Stage-specific ROIs: ROIs that rank in the top k in more than a threshold of bootstrap iterations.

Per diagnostic group, each bootstrap replicate of the group's mean ROI importance (the same resamples as
the stability table, :mod:`rgenima_app.analysis.bootstrap`) ranks the 109 ROIs; an ROI's *frequency* is
the fraction of replicates in which it is among the top ``k``. ROIs with frequency above ``threshold``
(default 0.5, the paper's criterion) are that stage's specific ROIs. The paper reports 5-6 per stage;
its "top set" size is not stated, so ``k`` (default 10) is an option.

Stage contrast (``contrast``; ``[analysis] stage_contrast``, off by default): the paper ranks each stage's own mean
importance, so ROIs every stage attends to (large ROIs, early tokens) are "specific" to every stage. With a
contrast, each replicate ranks the stage's resampled mean *minus* the reference's resampled mean (the NC
group, or the whole cohort; each resampled from its own stream), and only a positive difference can be in
the top k: a stage-specific ROI is one the stage attends to more than the reference does. The reference
group itself is contrasted with all other participants.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from .bootstrap import DEFAULT_N_BOOT, bootstrap, bootstrap_by_group
from .importance import COHORT

DEFAULT_TOP_K = 10
DEFAULT_THRESHOLD = 0.5
DISEASE_STAGES = ("SMC", "MCI", "AD")


def topk_frequency(replicates: np.ndarray, k: int, positive_only: bool = False) -> np.ndarray:
    """Fraction of rows (iterations) of ``replicates`` (B x F) in which each feature is among the ``k`` largest.

    Ties at the boundary are broken by feature order (a stable sort), so the result is deterministic. With
    ``positive_only`` a value <= 0 is never in the top set (a contrast must be positive to count).
    """
    replicates = np.asarray(replicates, dtype=float)
    n_boot, n_features = replicates.shape
    if not 1 <= k <= n_features:
        raise ValueError(f"top-k needs 1 <= k <= {n_features}, got k={k}")
    order = np.argsort(-replicates, axis=1, kind="stable")[:, :k]
    if positive_only:
        order = order[np.take_along_axis(replicates, order, axis=1) > 0]
    return np.bincount(order.ravel(), minlength=n_features) / n_boot


def stable_features(names: Sequence[str], replicates: np.ndarray, k: int, threshold: float,
                    positive_only: bool = False) -> pd.DataFrame:
    """Per feature: bootstrap mean, top-k frequency, rank by frequency (then mean) and ``selected``."""
    freq = topk_frequency(replicates, k, positive_only)
    table = pd.DataFrame({"name": list(names), "mean": replicates.mean(axis=0), "frequency": freq})
    table = table.sort_values(["frequency", "mean"], ascending=False, kind="stable").reset_index(drop=True)
    table["rank"] = np.arange(1, len(table) + 1)
    table["selected"] = table["frequency"] > threshold
    return table


def stage_specific_rois(roi_importance: np.ndarray, groups: Sequence[str], roi_names: Sequence[str],
                        k: int = DEFAULT_TOP_K, threshold: float = DEFAULT_THRESHOLD,
                        n_boot: int = DEFAULT_N_BOOT, seed: int = 0, sample_size: int | None = None,
                        contrast: str | None = None) -> pd.DataFrame:
    """Top-k frequency of every ROI in every group: group, roi, mean, frequency, rank, selected.

    ``roi_importance`` is participants x ROIs (order of ``roi_names``); ``groups`` the group of each.
    ``contrast``: None ranks each group's mean (the paper); a group name (``NC``) or ``cohort`` ranks each
    group's mean minus the reference's (module doc); ``mean`` is then the bootstrap mean of that difference.
    """
    roi_importance = np.asarray(roi_importance, dtype=float)
    if roi_importance.ndim != 2 or roi_importance.shape[1] != len(roi_names):
        raise ValueError(f"ROI importance must be participants x {len(roi_names)} ROIs, got {roi_importance.shape}")
    results = bootstrap_by_group(roi_importance, groups, n_boot, seed, sample_size, keep_replicates=True)
    frames = []
    for group, res in results.items():
        replicates = res.replicates
        if contrast is not None:
            replicates = replicates - reference_replicates(roi_importance, groups, group, contrast, results,
                                                           n_boot, seed, sample_size)
        table = stable_features(roi_names, replicates, k, threshold, positive_only=contrast is not None)
        table = table.rename(columns={"name": "roi"})
        table.insert(0, "group", group)
        frames.append(table)
    columns = ["group", "roi", "mean", "frequency", "rank", "selected"]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


def reference_replicates(values: np.ndarray, groups: Sequence[str], group: str, reference: str, results: dict,
                         n_boot: int, seed: int, sample_size: int | None) -> np.ndarray:
    """Bootstrap replicates of the mean that ``group`` is contrasted with: the whole cohort, the reference
    group's own replicates, or (for the reference group itself) all other participants."""
    labels = np.asarray([str(g) for g in groups], dtype=object)
    if reference == COHORT:
        return bootstrap(values, n_boot, seed, COHORT, sample_size, keep_replicates=True).replicates
    if group != reference:
        if reference not in results:
            raise ValueError(f"no group {reference!r} to contrast with (groups: {', '.join(results)})")
        return results[reference].replicates
    others = labels != reference
    if not others.any():  # a cohort of the reference group only: its own mean is ranked
        return np.zeros_like(results[reference].replicates)
    return bootstrap(values[others], n_boot, seed, f"not {reference}", sample_size, keep_replicates=True).replicates


def sharing_pattern(stage_rois: pd.DataFrame, stages: Sequence[str] = DISEASE_STAGES) -> pd.DataFrame:
    """Which stages select each selected ROI: roi, one boolean column per stage, n_stages, pattern.

    ``pattern`` reads "shared by all", "SMC + AD", "MCI only", ...; rows are ordered most-shared first.
    Stages absent from ``stage_rois`` count as selecting nothing.
    """
    chosen = stage_rois[stage_rois["selected"] & stage_rois["group"].isin(stages)]
    rois = list(dict.fromkeys(chosen.sort_values("rank", kind="stable")["roi"]))
    table = pd.DataFrame({"roi": rois})
    for stage in stages:
        members = set(chosen.loc[chosen["group"] == stage, "roi"])
        table[stage] = table["roi"].isin(members)
    table["n_stages"] = table[list(stages)].sum(axis=1).astype(int)

    def describe(row) -> str:
        which = [s for s in stages if row[s]]
        if len(which) == len(stages) and len(stages) > 1:
            return "shared by all"
        return " + ".join(which) + (" only" if len(which) == 1 else "")

    table["pattern"] = table.apply(describe, axis=1) if len(table) else pd.Series(dtype=str)
    return table.sort_values("n_stages", ascending=False, kind="stable").reset_index(drop=True)
