"""Bootstrap stability of attention over participants (paper eqs. 13-17).

For one diagnostic group with N participants and an importance value ``x[i, f]`` per participant ``i``
and feature ``f`` (an ROI, or an ROI-gene pair), a bootstrap replicate draws N participants with
replacement and takes the mean (eq. 14). Over B replicates (eq. 15) we report the bootstrap mean (eq. 16),
the 2.5th/97.5th percentiles and ``stability = mean / (p97.5 - p2.5)`` (eq. 17).

Vectorisation: a resample with replacement is fully described by how often each participant was drawn,
so the B resamples are a count matrix ``C`` (B x N, rows from a multinomial) and all replicate means of all
features are one matrix product ``C @ X / N``. Percentiles need every replicate of a feature at once, so
the work is chunked over *features*: memory is ``B x chunk`` floats, whatever the number of features.

Zero CI width: when every replicate mean is the same (one participant, or identical values in all
participants; up to floating-point round-off) the ratio of eq. 17 has no meaning; stability is then NaN
(``n/a`` in TSV files) and ranks below every finite value.

Seeding: each group gets its own stream derived from ``(seed, group name)``, so a group's result does
not depend on which other groups are present, and the ROI and ROI-gene tables of one group use the same
resamples.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

DEFAULT_N_BOOT = 1000
CI_PERCENTILES = (2.5, 97.5)
ZERO_WIDTH_RTOL = 1e-9
STAGE_ORDER = ("NC", "SMC", "MCI", "AD")
# Replicate-mean matrices are built ``B x chunk`` at a time; 2**22 doubles = 32 MiB.
_CHUNK_ELEMENTS = 2 ** 22


@dataclass
class BootstrapResult:
    """Bootstrap summary of one group; arrays have the feature shape of the input."""

    n: int
    n_boot: int
    mean: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    stability: np.ndarray
    replicates: np.ndarray | None = None  # (B, *features) replicate means, when asked for


def group_rng(seed: int, group: str) -> np.random.Generator:
    """The random stream of one group: a function of the seed and the group's name only."""
    return np.random.default_rng([int(seed), zlib.crc32(str(group).encode("utf-8"))])


def draw_counts(n: int, n_boot: int, rng: np.random.Generator, sample_size: int | None = None) -> np.ndarray:
    """How often each of ``n`` participants is drawn in each of ``n_boot`` resamples (``n_boot x n``).

    Each row is a resample of ``sample_size`` (default ``n``) draws with replacement.
    """
    if n < 1:
        raise ValueError("a bootstrap needs at least one participant")
    m = n if sample_size is None else int(sample_size)
    return rng.multinomial(m, np.full(n, 1.0 / n), size=n_boot)


def stability_ratio(mean: np.ndarray, ci_low: np.ndarray, ci_high: np.ndarray) -> np.ndarray:
    """Eq. 17, with NaN where the CI has zero width (see the module docstring).

    Widths within floating-point round-off of zero (below ``ZERO_WIDTH_RTOL`` times the interval's
    magnitude) count as zero: resampled means of identical values differ only in the last bits.
    """
    low, high = np.asarray(ci_low, dtype=float), np.asarray(ci_high, dtype=float)
    width = high - low
    scale = np.maximum(np.abs(low), np.abs(high))
    out = np.full(np.shape(width), np.nan)
    np.divide(mean, width, out=out, where=width > ZERO_WIDTH_RTOL * scale + np.finfo(float).tiny)
    return out


def summarize_replicates(replicates: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Bootstrap mean, 2.5/97.5 percentiles (linear interpolation) and stability over axis 0."""
    mean = replicates.mean(axis=0)
    low, high = np.percentile(replicates, CI_PERCENTILES, axis=0)
    return mean, low, high, stability_ratio(mean, low, high)


def bootstrap_counts(values: np.ndarray, counts: np.ndarray, keep_replicates: bool = False,
                     chunk: int | None = None) -> BootstrapResult:
    """Summarise ``values`` (participants x features...) under given resample ``counts`` (B x participants)."""
    values = np.asarray(values, dtype=float)
    n, feature_shape = values.shape[0], values.shape[1:]
    n_boot = counts.shape[0]
    if counts.shape[1] != n:
        raise ValueError(f"counts are for {counts.shape[1]} participants, values for {n}")
    flat = values.reshape(n, -1)
    n_features = flat.shape[1]
    weights = counts.astype(float) / counts.sum(axis=1, keepdims=True)  # row b: weights of the mean
    step = chunk or max(1, _CHUNK_ELEMENTS // max(n_boot, 1))
    mean, low, high, stab = (np.empty(n_features) for _ in range(4))
    replicates = np.empty((n_boot, n_features)) if keep_replicates else None
    for start in range(0, n_features, step):
        part = slice(start, min(start + step, n_features))
        reps = weights @ flat[:, part]
        mean[part], low[part], high[part], stab[part] = summarize_replicates(reps)
        if replicates is not None:
            replicates[:, part] = reps
    shape = feature_shape
    return BootstrapResult(
        n=n, n_boot=n_boot, mean=mean.reshape(shape), ci_low=low.reshape(shape), ci_high=high.reshape(shape),
        stability=stab.reshape(shape),
        replicates=None if replicates is None else replicates.reshape((n_boot, *shape)),
    )


def bootstrap(values: np.ndarray, n_boot: int = DEFAULT_N_BOOT, seed: int = 0, group: str = "all",
              sample_size: int | None = None, keep_replicates: bool = False) -> BootstrapResult:
    """Bootstrap one group's ``values`` (participants x features...), seeded by ``(seed, group)``."""
    counts = draw_counts(np.shape(values)[0], n_boot, group_rng(seed, group), sample_size)
    return bootstrap_counts(values, counts, keep_replicates=keep_replicates)


def ordered_groups(groups: Sequence[str]) -> list[str]:
    """Distinct group names, the diagnostic stages first in disease order, then any others sorted."""
    present = {str(g) for g in groups if isinstance(g, str) and g}
    return [g for g in STAGE_ORDER if g in present] + sorted(present - set(STAGE_ORDER))


def bootstrap_by_group(values: np.ndarray, groups: Sequence[str], n_boot: int = DEFAULT_N_BOOT, seed: int = 0,
                       sample_size: int | None = None, keep_replicates: bool = False,
                       min_participants: int = 1) -> dict[str, BootstrapResult]:
    """:func:`bootstrap` for each group of participants (``groups[i]`` is participant ``i``'s group).

    Groups with fewer than ``min_participants`` participants, and missing labels, are left out.
    """
    values = np.asarray(values, dtype=float)
    labels = np.asarray([str(g) if isinstance(g, str) else "" for g in groups], dtype=object)
    if len(labels) != values.shape[0]:
        raise ValueError(f"{len(labels)} group labels for {values.shape[0]} participants")
    results = {}
    for group in ordered_groups(list(labels)):
        members = np.flatnonzero(labels == group)
        if len(members) >= min_participants:
            results[group] = bootstrap(values[members], n_boot, seed, group, sample_size, keep_replicates)
    return results


def _tidy(results: dict[str, BootstrapResult], index: pd.DataFrame) -> pd.DataFrame:
    frames = []
    for group, res in results.items():
        frame = index.copy()
        frame.insert(0, "n", res.n)
        frame.insert(0, "group", group)
        frame["mean"] = res.mean.ravel()
        frame["ci_low"] = res.ci_low.ravel()
        frame["ci_high"] = res.ci_high.ravel()
        frame["stability"] = res.stability.ravel()
        frames.append(frame)
    columns = ["group", "n", *index.columns, "mean", "ci_low", "ci_high", "stability"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def roi_stability_table(roi_importance: np.ndarray, groups: Sequence[str], roi_names: Sequence[str],
                        n_boot: int = DEFAULT_N_BOOT, seed: int = 0, sample_size: int | None = None) -> pd.DataFrame:
    """``desc-<model>_roistability.tsv``: group, n, roi, mean, ci_low, ci_high, stability.

    ``roi_importance`` is participants x ROIs, in the order of ``roi_names``.
    """
    roi_importance = np.asarray(roi_importance, dtype=float)
    if roi_importance.ndim != 2 or roi_importance.shape[1] != len(roi_names):
        raise ValueError(f"ROI importance must be participants x {len(roi_names)} ROIs, got {roi_importance.shape}")
    results = bootstrap_by_group(roi_importance, groups, n_boot, seed, sample_size)
    return _tidy(results, pd.DataFrame({"roi": list(roi_names)}))


def roi_gene_stability_table(roi_gene: np.ndarray, groups: Sequence[str], roi_names: Sequence[str],
                             genes: Sequence[str], n_boot: int = DEFAULT_N_BOOT, seed: int = 0,
                             sample_size: int | None = None) -> pd.DataFrame:
    """``desc-<model>_roigenestability.tsv``: group, n, roi, gene, mean, ci_low, ci_high, stability.

    ``roi_gene`` is participants x ROIs x genes (ROI-major rows in the table, as in the array).
    """
    roi_gene = np.asarray(roi_gene, dtype=float)
    expected = (len(roi_names), len(genes))
    if roi_gene.ndim != 3 or roi_gene.shape[1:] != expected:
        raise ValueError(f"ROI-gene attention must be participants x {expected[0]} x {expected[1]}, got {roi_gene.shape}")
    results = bootstrap_by_group(roi_gene, groups, n_boot, seed, sample_size)
    index = pd.DataFrame({"roi": np.repeat(list(roi_names), len(genes)), "gene": np.tile(list(genes), len(roi_names))})
    return _tidy(results, index)
