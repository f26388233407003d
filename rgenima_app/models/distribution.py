"""The training distribution of what a model sees, and an out-of-distribution (OOD) score against it
(docs/inference.md, "Out-of-distribution score").

Fitted at training on the participants the model was trained on (training and validation roles) and
stored in the bundle (``rgenima.json``, key ``distribution``); applied to every sample ``participant
--model`` predicts. Plain arrays and tables in, plain dicts (JSON) out.

Components, each with its own threshold; a sample's ``ood_score`` is the largest ratio value/threshold
over the components it has, and it is flagged when that ratio exceeds 1:

- ``image``: per-ROI log volumes (``log1p(volume_mm3)``, 0 for an absent ROI) and mean intensities
  (relative to the cerebral white matter when the model's ROI normalisation is "wm", as its patches
  are), 218 features. Each feature is centred on the training median and scaled by the training MAD
  (x 1.4826, floored at 10% of the median scale of its kind so a near-constant feature cannot dominate);
  the statistic is the root mean square of these robust z-scores, each clipped at +-10 (small ROIs have
  near-constant voxel counts in training, so unclipped they alone decide). Its threshold is calibrated on the
  training participants' own leave-one-participant-out statistics: the ceil((1 - alpha)(n + 1))-th
  smallest of the n (split-conformal quantile; the largest when that rank exceeds n), so that an
  exchangeable held-out participant is flagged with probability about max(alpha, 1/(n + 1)).
- ``genotype_missingness``: the fraction of the model's panel SNPs imputed (missing call or absent);
  threshold: the training maximum plus ``MISSINGNESS_MARGIN``.
- ``age``: from participants.tsv when training had ages; ratio |age - mid| / half-range of the
  training ages (> 1 outside the range).

A diagonal robust model rather than a covariance (Mahalanobis) one: training cohorts have fewer
participants than the 218 features, so a covariance needs heavy shrinkage and is unstable, while a
median/MAD per feature is stable from ~10 participants and says which ROI deviates.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from rgenima_app.imaging.roi_table import roi_names

DISTRIBUTION_FORMAT = 1
ALPHA = 0.01
MAD_TO_SD = 1.4826
SCALE_FLOOR = 0.1
MISSINGNESS_MARGIN = 0.10
MIN_PARTICIPANTS = 3
#: |z| cap per feature: one small ROI whose voxel count is nearly constant in training cannot decide alone.
Z_CLIP = 10.0
#: Cerebral white matter (left, right): the reference of the "wm" intensity normalisation (imaging/rois.py).
WM_LABELS = (2, 41)
UNAVAILABLE = "the model bundle stores no training distribution (trained before rgenima recorded one)"


# ------------------------------------------------------------------------------------------ features
def feature_names() -> list[str]:
    names = roi_names()
    return [f"{n} volume" for n in names] + [f"{n} intensity" for n in names]


def roi_features(morph: pd.DataFrame, normalization: str = "wm") -> np.ndarray:
    """(218,) log1p ROI volumes then ROI mean intensities (relative to the white matter with "wm") of one
    sample's morphometry table (``imaging.rois.MORPH_COLUMNS``, canonical ROI order); NaN: absent ROI."""
    volume = morph["volume_mm3"].to_numpy(float)
    intensity = morph["intensity_mean"].to_numpy(float)
    if normalization == "wm":
        wm = morph["label"].isin(WM_LABELS).to_numpy() & np.isfinite(intensity)
        counts = morph["voxels"].to_numpy(float)
        if not wm.any() or counts[wm].sum() == 0:  # as extraction does: fall back to all ROI voxels
            wm = np.isfinite(intensity) & (counts > 0)
        reference = float((intensity[wm] * counts[wm]).sum() / counts[wm].sum()) if wm.any() else math.nan
        intensity = intensity / reference if reference > 0 else np.full_like(intensity, np.nan)
    return np.concatenate([np.log1p(np.nan_to_num(volume, nan=0.0)), intensity])


def missing_fraction(genotypes: pd.DataFrame) -> float:
    """Fraction of the panel SNPs imputed in a ``genetics.participant`` table (column ``imputed``)."""
    return float(genotypes["imputed"].astype(bool).mean()) if len(genotypes) else 1.0


# ------------------------------------------------------------------------------------------ fit
def _robust(x: np.ndarray, kinds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: ROIs absent in every sample
        center = np.nanmedian(x, axis=0)
        scale = MAD_TO_SD * np.nanmedian(np.abs(x - center), axis=0)
    for kind in np.unique(kinds):
        part = kinds == kind
        positive = scale[part][np.isfinite(scale[part]) & (scale[part] > 0)]
        floor = max(SCALE_FLOOR * float(np.median(positive)) if len(positive) else 0.0, 1e-6)
        scale[part] = np.where(np.isfinite(scale[part]), np.maximum(scale[part], floor), np.nan)
    return center, scale


def _statistic(x: np.ndarray, center: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Root mean square of the robust z-scores, each clipped at ``Z_CLIP``, over the features known in both
    (one value per row)."""
    z = np.clip((np.atleast_2d(x) - center) / scale, -Z_CLIP, Z_CLIP)
    known = np.isfinite(z)
    return np.sqrt((np.where(known, z, 0.0) ** 2).sum(axis=1) / np.maximum(known.sum(axis=1), 1))


def _kinds(n_features: int) -> np.ndarray:
    return np.repeat(np.arange(2), n_features // 2) if n_features % 2 == 0 else np.zeros(n_features, int)


def conformal_threshold(scores: np.ndarray, alpha: float = ALPHA) -> float:
    """The ceil((1 - alpha)(n + 1))-th smallest score (the largest when that rank exceeds n)."""
    ordered = np.sort(np.asarray(scores, float))
    rank = math.ceil((1 - alpha) * (len(ordered) + 1))
    return float(ordered[min(rank, len(ordered)) - 1])


def _json_list(values: np.ndarray) -> list:
    return [None if not np.isfinite(v) else float(v) for v in values]


def fit_distribution(groups: list[str], *, features: np.ndarray | None = None, normalization: str = "wm",
                     missingness: np.ndarray | None = None, ages: np.ndarray | None = None,
                     alpha: float = ALPHA) -> dict:
    """The training distribution as a JSON-able dict.

    ``groups``: the participant of each sample (leave-one-participant-out calibration); ``features``:
    (n_samples, 218) ``roi_features`` rows (None: the model reads no image); ``missingness``: per sample
    ``missing_fraction`` (None: no SNP panel); ``ages``: per sample age in years (NaN unknown; None or
    fewer than two known: no age component).
    """
    groups = np.asarray([str(g) for g in groups])
    participants = np.unique(groups)
    out: dict = {"format": DISTRIBUTION_FORMAT, "n_samples": int(len(groups)),
                 "n_participants": int(len(participants))}
    if features is not None and len(participants) >= MIN_PARTICIPANTS:
        x = np.asarray(features, float)
        kinds = _kinds(x.shape[1])
        center, scale = _robust(x, kinds)
        loo = np.empty(len(x))
        for participant in participants:
            left = groups == participant
            c, s = _robust(x[~left], kinds)
            loo[left] = _statistic(x[left], c, s)
        out["image"] = {
            "statistic": "root mean square of robust z-scores (median, 1.4826 x MAD), each clipped at +-10",
            "normalization": normalization, "n_features": int(x.shape[1]),
            "center": _json_list(center), "scale": _json_list(scale),
            "loo_scores": [float(v) for v in loo], "alpha": alpha,
            "threshold": conformal_threshold(loo, alpha),
            "training_score_max": float(loo.max()), "training_score_median": float(np.median(loo)),
        }
    if missingness is not None and len(missingness):
        m = np.asarray(missingness, float)
        out["genotype_missingness"] = {"max": float(m.max()), "median": float(np.median(m)),
                                       "margin": MISSINGNESS_MARGIN,
                                       "threshold": float(min(1.0, m.max() + MISSINGNESS_MARGIN))}
    known = np.asarray(ages, float)[np.isfinite(np.asarray(ages, float))] if ages is not None else np.array([])
    if len(known) >= 2:
        out["age"] = {"min": float(known.min()), "max": float(known.max()), "n": int(len(known))}
    return out


# ------------------------------------------------------------------------------------------ score
@dataclass
class OODScore:
    """One sample's score against a training distribution; ``score``/``flag`` None: unavailable."""

    score: float | None
    flag: bool | None
    components: dict = field(default_factory=dict)   # name -> {value, threshold, ratio}
    reasons: list[str] = field(default_factory=list)
    note: str | None = None

    @property
    def available(self) -> bool:
        return self.score is not None

    def to_dict(self) -> dict:
        return {"Available": self.available, "Score": self.score, "Flagged": self.flag,
                "Components": self.components, "Reasons": self.reasons, "Note": self.note}


def score_sample(distribution: dict | None, *, features: np.ndarray | None = None,
                 missingness: float | None = None, age: float | None = None) -> OODScore:
    """Score one sample (arguments as in ``fit_distribution``, one sample's values)."""
    if not distribution:
        return OODScore(None, None, note=UNAVAILABLE)
    components, reasons = {}, []
    image = distribution.get("image")
    if image is not None and features is not None:
        center = np.array(image["center"], dtype=float)
        scale = np.array(image["scale"], dtype=float)
        x = np.asarray(features, float)
        value = float(_statistic(x, center, scale)[0])
        components["image"] = _component(value, image["threshold"])
        if components["image"]["ratio"] > 1:
            z = np.abs((x - center) / scale)
            worst = np.argsort(np.where(np.isfinite(z), -z, np.inf))[:3]
            names = feature_names() if len(x) == 2 * len(roi_names()) else [f"feature {i}" for i in range(len(x))]
            reasons.append(f"ROI volumes and intensities: score {value:.3g} above the training threshold "
                           f"{image['threshold']:.3g} (most deviant: "
                           + ", ".join(f"{names[i]} |z| {z[i]:.3g}" for i in worst if np.isfinite(z[i])) + ")")
    genetic = distribution.get("genotype_missingness")
    if genetic is not None and missingness is not None:
        components["genotype_missingness"] = _component(float(missingness), genetic["threshold"])
        if components["genotype_missingness"]["ratio"] > 1:
            reasons.append(f"genotype missingness: {missingness:.1%} of the panel SNPs imputed, training at most "
                           f"{genetic['max']:.1%}")
    ages = distribution.get("age")
    if ages is not None and age is not None and np.isfinite(age):
        mid, half = (ages["min"] + ages["max"]) / 2, max((ages["max"] - ages["min"]) / 2, 0.5)
        inside = ages["min"] <= age <= ages["max"]
        ratio = abs(age - mid) / half
        # at the range's edge the ratio is 1 up to rounding: decide by the range itself
        components["age"] = {"value": float(age), "range": [ages["min"], ages["max"]],
                             "ratio": float(min(ratio, 1.0) if inside else max(ratio, math.nextafter(1.0, 2.0)))}
        if not inside:
            reasons.append(f"age {age:g} outside the training range {ages['min']:g}-{ages['max']:g}")
    if not components:
        return OODScore(None, None, note="none of what the training distribution describes is available for "
                                         "this sample")
    score = max(c["ratio"] for c in components.values())
    return OODScore(score, bool(score > 1), components, reasons)


def _component(value: float, threshold: float) -> dict:
    ratio = value / threshold if threshold > 0 else (math.inf if value > 0 else 0.0)
    return {"value": value, "threshold": float(threshold), "ratio": float(ratio)}
