"""Stage-specific ROIs: ROIs that rank in the top k in more than a threshold of bootstrap iterations.

Per diagnostic group, each bootstrap replicate of the group's mean ROI importance (the same resamples as
the stability table, :mod:`rgenima_app.analysis.bootstrap`) ranks the 109 ROIs; an ROI's *frequency* is
the fraction of replicates in which it is among the top ``k``. ROIs with frequency above ``threshold``
(default 0.5, the paper's criterion) are that stage's specific ROIs. The paper reports 5-6 per stage;
its "top set" size is not stated, so ``k`` (default 10) is an option.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from .bootstrap import DEFAULT_N_BOOT, bootstrap_by_group

DEFAULT_TOP_K = 10
DEFAULT_THRESHOLD = 0.5
DISEASE_STAGES = ("SMC", "MCI", "AD")


def topk_frequency(replicates: np.ndarray, k: int) -> np.ndarray:
    """Fraction of rows (iterations) of ``replicates`` (B x F) in which each feature is among the ``k`` largest.

    Ties at the boundary are broken by feature order (a stable sort), so the result is deterministic.
    """
    replicates = np.asarray(replicates, dtype=float)
    n_boot, n_features = replicates.shape
    if not 1 <= k <= n_features:
        raise ValueError(f"top-k needs 1 <= k <= {n_features}, got k={k}")
    order = np.argsort(-replicates, axis=1, kind="stable")[:, :k]
    return np.bincount(order.ravel(), minlength=n_features) / n_boot


def stable_features(names: Sequence[str], replicates: np.ndarray, k: int, threshold: float) -> pd.DataFrame:
    """Per feature: bootstrap mean, top-k frequency, rank by frequency (then mean) and ``selected``."""
    freq = topk_frequency(replicates, k)
    table = pd.DataFrame({"name": list(names), "mean": replicates.mean(axis=0), "frequency": freq})
    table = table.sort_values(["frequency", "mean"], ascending=False, kind="stable").reset_index(drop=True)
    table["rank"] = np.arange(1, len(table) + 1)
    table["selected"] = table["frequency"] > threshold
    return table


def stage_specific_rois(roi_importance: np.ndarray, groups: Sequence[str], roi_names: Sequence[str],
                        k: int = DEFAULT_TOP_K, threshold: float = DEFAULT_THRESHOLD,
                        n_boot: int = DEFAULT_N_BOOT, seed: int = 0, sample_size: int | None = None) -> pd.DataFrame:
    """Top-k frequency of every ROI in every group: group, roi, mean, frequency, rank, selected.

    ``roi_importance`` is participants x ROIs (order of ``roi_names``); ``groups`` the group of each.
    """
    roi_importance = np.asarray(roi_importance, dtype=float)
    if roi_importance.ndim != 2 or roi_importance.shape[1] != len(roi_names):
        raise ValueError(f"ROI importance must be participants x {len(roi_names)} ROIs, got {roi_importance.shape}")
    results = bootstrap_by_group(roi_importance, groups, n_boot, seed, sample_size, keep_replicates=True)
    frames = []
    for group, res in results.items():
        table = stable_features(roi_names, res.replicates, k, threshold).rename(columns={"name": "roi"})
        table.insert(0, "group", group)
        frames.append(table)
    columns = ["group", "roi", "mean", "frequency", "rank", "selected"]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


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
