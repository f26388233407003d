"""Longitudinal synthetic cohorts: visits, a CDR-SB trajectory with a planted rate, and its Bayes truth.

``python -m rgenima_app.synthetic OUT --visits N`` (N >= 2) adds to the cohort of cohort.py (whose draws
are unchanged: this model draws from its own random stream, seeded by (seed, 24)):

1. Schedule. Visit k = 0..N-1 is planned at 12 k months; follow-ups are shifted by
   ``clip(N(0, 1), -3, 3)`` months and rounded to whole days (dates in ``acq_time``). A follow-up is
   missed with probability 0.05 and an attended follow-up lacks its CDR-SB with probability 0.02 (n/a),
   both missing completely at random. Dropout is informative: during interval k (from visit k-1 to visit
   k) a participant still in the study leaves it (no later visits) with probability
   ``logistic(logit(dropout_per_interval) + dropout_logit_per_cdr_sb * min(c_k, 18))``, c_k the latent
   CDR-SB at the planned time of visit k (the state the participant reaches during the interval):
   0.06 at CDR-SB 0, 0.10 at 4, 0.17 at 8, 0.28 at 12, so the more impaired and the faster declining
   leave more often, as in cohort studies of dementia (in 5,000 simulated participants 87% of NC, 79% of
   MCI and 57% of AD are still in the study at 24 months). ``dropout_logit_per_cdr_sb = 0`` with
   ``dropout_per_interval = 0.10`` is missing completely at random (the model before dropout depended on
   the latent state; it draws the same cohort).
2. Baseline CDR-SB. A latent score ``c0 = lo + (hi - lo) * Phi(S)`` inside its stage's band (lo, hi): NC
   (0, 0.25), SMC (0, 0.75), MCI (0.75, 4.25), AD (4.25, 9); recorded CDR-SB = the latent rounded to the
   nearest 0.5, at most 18. The position in the band follows the baseline severity
   ``S = s_gene * G + s_atrophy * (A - stage_atrophy[stage]) + s_sd * N(0, 1)`` (G and A as in 3;
   stage_atrophy: cohort.py's planted atrophy per stage, so the atrophy term is the image's deviation from
   its stage's mean), s_gene = 0.5, s_atrophy = 40, s_sd = 0.6: within a stage, more atrophy and a higher
   genetic score mean a more severe baseline, which images and genotypes therefore carry (without it an
   MCI participant's distance to the AD band, which decides conversion, would be unobservable).
3. Rate (CDR-SB points per year), fixed per participant:
   ``r = max(0, a[stage] + b_gene * G + b_atrophy * A + N(0, 0.4^2))`` with a = (-0.4, -0.1, 0.3, 0.9) for
   NC/SMC/MCI/AD, b_gene = 0.25, b_atrophy = 8;
   G = sum_j beta_j (g_j - 2 p_j) over the planted genes' causal SNPs (the true genotypes, also behind
   missing calls; the stage liability's genetic part), A = mean over the planted ROIs of the baseline
   image's lost volume fraction (1 - voxels / phantom voxels) minus that of an average NC (1 - 0.92).
   A is measured on the baseline image, so it is observable; G is, up to missing calls.
   Latent CDR-SB at t months: ``c0 + r t / 12`` (never decreasing); recorded as in 2.
4. Diagnosis at a visit: AD when the recorded CDR-SB is >= 4.5, MCI when >= 1, else the baseline stage;
   never below the baseline stage. MCI converts to AD when its latent CDR-SB reaches 4.25.
5. Images at follow-up visits (``followup_images``, off by default; cohort.py writes them): every attended
   follow-up session gets a T1w (and its FreeSurfer subject) whose ROIs keep the baseline image's
   fractions, except that each planted ROI has lost a further ``atrophy_per_cdr_sb * (c(t) - c0)`` =
   0.01 * r * t / 12 of its phantom voxels (a participant declining 1 CDR-SB point per year loses 1% of
   the planted ROIs' volume per year; a non-progressor, r = 0, none), plus scan-to-scan noise
   N(0, followup_scan_sd^2 = 0.005^2) on every ROI's fraction (clipped to 0.3-1 as at baseline). They are
   drawn from their own stream (seeded by (seed, 24, 2)), so the sessions files and the truth are the same
   with or without them.

Bayes truth (``progression_truth.tsv``, one row per participant): given what a model reads at baseline
(genotypes with their missing calls, the ROI voxel counts), for each planned follow-up k (at 12 k months)

- ``expected_delta_cdr_sb_m{12k}`` = E[recorded CDR-SB at visit k - at baseline | X, visit k's CDR-SB
  observed] (the Bayes-optimal prediction of the observed targets under squared error) and
  ``sd_delta_cdr_sb_m{12k}`` its conditional SD;
- ``p_convert_m{12k}`` = P(AD at visit k | X, baseline MCI, visit k attended) (baseline MCI only; by
  monotonicity, AD at visit k is AD at any visit up to k);
- ``population_expected_delta_cdr_sb_m{12k}`` and ``population_p_convert_m{12k}``: the same without the
  condition on being observed (what the whole cohort would show had nobody left the study);
- ``p_observed_m{12k}`` = P(CDR-SB recorded at visit k | X).

Why the condition: a target exists only for a participant observed at the horizon, and under informative
dropout who is observed depends on the latent trajectory, so E[Δ | X] over everybody is biased for the
observed targets (the faster decliners it averages over are missing from them). With S_k = prod_{j<=k}
(1 - p_leave_j) the probability of staying through visit k given the latent state (the missed visit and
the missing CDR-SB are independent of everything and cancel), E[Δ | X, observed] = E[Δ S_k | X] / E[S_k | X].

All are exact sums over the stage and over the genotypes of missing causal calls (the stage posterior of
cohort.py, which is exact) of integrals over the rate noise, the severity noise and the visit's shift, computed by
randomised quasi-Monte Carlo (``QUADRATURE_POINTS`` scrambled Sobol points, seeded, shared by all
participants: its relative error on these smooth-in-mean integrands is well under 1%). The targets of
``rgenima_app.progression.targets`` with horizon 12 k months and a window under 9 months pick exactly
visit k (neighbouring visits are at least 6 months outside), so the conditional columns are the
Bayes-optimal predictions of those targets; ``ground_truth.json`` records the expected Bayes-optimal RMSE
per horizon over the participants who will be observed, sqrt(sum p_observed * variance / sum p_observed).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import expit, logit, ndtr, ndtri
from scipy.stats import qmc

from rgenima_app import STAGES
from rgenima_app.bids.tsv import to_tsv
from rgenima_app.synthetic.liability import missing_call_combinations

DAYS_PER_MONTH = 30.4375
QUADRATURE_POINTS = 4096
STREAM = 24  # the progression model's random stream: default_rng([seed, STREAM])


@dataclass
class ProgressionModel:
    """Parameters of the longitudinal model (module docstring); written to ground_truth.json."""

    visits: int
    interval_months: float = 12.0
    shift_sd_months: float = 1.0
    shift_max_months: float = 3.0
    miss_probability: float = 0.05
    dropout_per_interval: float = 0.06              # P(leaving during an interval) at latent CDR-SB 0
    dropout_logit_per_cdr_sb: float = 0.15          # its logit's rise per latent CDR-SB point (0: MCAR)
    cdr_sb_missing_probability: float = 0.02
    baseline_bands: tuple = ((0.0, 0.25), (0.0, 0.75), (0.75, 4.25), (4.25, 9.0))
    severity_per_genetic_score: float = 0.5
    severity_per_atrophy: float = 40.0
    severity_sd: float = 0.6
    stage_atrophy: tuple = (0.0, 0.03, 0.06, 0.10)  # cohort.py's GeneratorParameters.atrophy (set from it)
    rate_intercept: tuple = (-0.4, -0.1, 0.3, 0.9)   # CDR-SB points per year, NC/SMC/MCI/AD
    rate_per_genetic_score: float = 0.25
    rate_per_atrophy: float = 8.0
    rate_sd: float = 0.4
    reference_kept_fraction: float = 0.92            # an average NC's kept fraction (cohort.py's mean)
    mci_from: float = 1.0                            # recorded CDR-SB at which a visit is MCI at least
    ad_from: float = 4.5                             # ... and AD
    followup_images: bool = False                    # a T1w at every attended follow-up (cohort.py)
    atrophy_per_cdr_sb: float = 0.01                 # planted-ROI kept fraction lost per latent CDR-SB point
    followup_scan_sd: float = 0.005                  # scan-to-scan noise of every ROI's kept fraction

    def horizons(self) -> list[int]:
        """Planned follow-up months: 12, 24, ... ."""
        return [int(round(self.interval_months * k)) for k in range(1, self.visits)]


#: The dropout of the model before it depended on the latent state (missing completely at random):
#: ``ProgressionModel(visits, **MCAR_DROPOUT)`` draws the same cohort as that model did.
MCAR_DROPOUT = {"dropout_per_interval": 0.10, "dropout_logit_per_cdr_sb": 0.0}


def recorded(latent: np.ndarray) -> np.ndarray:
    """Recorded CDR-SB: the latent score rounded to the nearest 0.5 (halves up), within 0-18."""
    return np.clip(np.floor(2.0 * np.asarray(latent) + 0.5) / 2.0, 0.0, 18.0)


def diagnosis_at(cdr_sb: np.ndarray, baseline_stage: np.ndarray, model: ProgressionModel) -> np.ndarray:
    """Stage index at a visit from its recorded CDR-SB, never below the baseline stage."""
    by_score = np.where(cdr_sb >= model.ad_from, 3, np.where(cdr_sb >= model.mci_from, 2, 0))
    return np.maximum(by_score, baseline_stage)


def dropout_probability(latent: np.ndarray, model: ProgressionModel) -> np.ndarray:
    """P(leaving the study during an interval) given the latent CDR-SB reached in it (module docstring, 1)."""
    return expit(logit(model.dropout_per_interval) + model.dropout_logit_per_cdr_sb * np.minimum(latent, 18.0))


def stay_probability(c0: np.ndarray, rate: np.ndarray, model: ProgressionModel) -> np.ndarray:
    """S_k: P(still in the study at visit k | c0, rate) for k = 1..N-1, shape (N-1, *c0.shape)."""
    stay = [1.0 - dropout_probability(c0 + rate * model.interval_months * k / 12.0, model)
            for k in range(1, model.visits)]
    return np.cumprod(np.stack(stay), axis=0)


def observed_atrophy(counts: np.ndarray, base: np.ndarray, model: ProgressionModel) -> np.ndarray:
    """A: mean lost volume fraction of the planted ROIs beyond an average NC's; counts (n, R), base (R,)."""
    return (1.0 - counts / base).mean(axis=1) - (1.0 - model.reference_kept_fraction)


def baseline_latent(stage, genetic_score, atrophy, noise, model: ProgressionModel) -> np.ndarray:
    """c0: the position Phi(S) of the baseline severity S inside the stage's band (module docstring, 2);
    ``noise`` is S's standard-normal part (broadcast with the other arguments)."""
    bands = np.array(model.baseline_bands)[stage]
    severity = model.severity_per_genetic_score * genetic_score \
        + model.severity_per_atrophy * (atrophy - np.array(model.stage_atrophy)[stage]) + model.severity_sd * noise
    return bands[..., 0] + (bands[..., 1] - bands[..., 0]) * ndtr(severity)


def _shift_months(standard_normal: np.ndarray, model: ProgressionModel) -> np.ndarray:
    return np.clip(model.shift_sd_months * standard_normal, -model.shift_max_months, model.shift_max_months)


def _visit_months(planned: float, shift: np.ndarray) -> np.ndarray:
    """Months since baseline of a visit, on whole days (as its date records it)."""
    return np.round((planned + shift) * DAYS_PER_MONTH) / DAYS_PER_MONTH


@dataclass
class Trajectories:
    """What was drawn: per participant the latent baseline score and rate; per visit its row."""

    latent_baseline: np.ndarray
    rate: np.ndarray
    visits: pd.DataFrame    # participant index, visit k, months, in_study, attended, cdr_sb (NaN: missing) and
                            # stage index; every planned visit of everybody (what it would have shown), with
                            # whether the participant was still in the study and attended it


def simulate(stage: np.ndarray, genetic_score: np.ndarray, atrophy: np.ndarray, model: ProgressionModel,
             rng: np.random.Generator) -> Trajectories:
    """Draw baseline scores, rates and visits of n participants (module docstring, 1-4)."""
    n = len(stage)
    c0 = baseline_latent(stage, genetic_score, atrophy, rng.normal(size=n), model)
    mean_rate = np.array(model.rate_intercept)[stage] + model.rate_per_genetic_score * genetic_score \
        + model.rate_per_atrophy * atrophy
    rate = np.maximum(0.0, mean_rate + model.rate_sd * rng.normal(size=n))
    rows = [pd.DataFrame({"participant": np.arange(n), "visit": 0, "months": 0.0, "in_study": True,
                          "attended": True, "cdr_sb": recorded(c0), "stage": stage})]
    present = np.ones(n, dtype=bool)
    for k in range(1, model.visits):
        reached = c0 + rate * model.interval_months * k / 12.0    # latent CDR-SB at visit k's planned time
        present &= rng.random(n) >= dropout_probability(reached, model)   # left the study during this interval
        attended = present & (rng.random(n) >= model.miss_probability)
        months = _visit_months(model.interval_months * k, _shift_months(rng.normal(size=n), model))
        score = recorded(c0 + rate * months / 12.0)
        stage_k = diagnosis_at(score, stage, model)
        score = np.where(rng.random(n) < model.cdr_sb_missing_probability, np.nan, score)
        rows.append(pd.DataFrame({"participant": np.arange(n), "visit": k, "months": months, "in_study": present.copy(),
                                  "attended": attended, "cdr_sb": score, "stage": stage_k}))
    return Trajectories(latent_baseline=c0, rate=rate, visits=pd.concat(rows, ignore_index=True))


def _nodes(seed: int) -> np.ndarray:
    """(Q, 3) standard-uniform quadrature points: rate noise, baseline severity noise, visit shift."""
    return qmc.Sobol(3, scramble=True, seed=np.random.default_rng([seed, STREAM, 1])).random(QUADRATURE_POINTS)


BAYES_COLUMNS = ("expected_delta_cdr_sb", "sd_delta_cdr_sb", "p_convert", "population_expected_delta_cdr_sb",
                 "population_p_convert", "p_observed")


def bayes_progression(dosage_causal: np.ndarray, betas: np.ndarray, freqs: np.ndarray, thresholds: np.ndarray,
                      image_likelihood: np.ndarray, atrophy: np.ndarray, model: ProgressionModel,
                      seed: int) -> pd.DataFrame:
    """Per participant and planned horizon: E and SD of ΔCDR-SB and P(conversion | MCI), given X and the
    follow-up being observed; the same without that condition; P(observed | X) (module docstring).

    dosage_causal: (n, genes) observed causal dosages (NaN: missing call); image_likelihood: (n, 4)
    P(planted ROI counts | stage); atrophy: (n,) A of the baseline image. Columns ``<what>_m<months>``."""
    u = _nodes(seed)
    z, severity_noise, shift = ndtri(u[:, 0]), ndtri(u[:, 1]), _shift_months(ndtri(u[:, 2]), model)
    horizons = model.horizons()
    months = np.stack([_visit_months(h, shift) for h in horizons])            # (H, Q)
    mci = STAGES.index("MCI")
    # MCAR parts of being observed: the visit attended, its CDR-SB recorded (they cancel in the conditions)
    recorded_share = (1.0 - model.miss_probability) * (1.0 - model.cdr_sb_missing_probability)
    out = {f"{what}_m{h}": np.full(len(atrophy), np.nan) for h in horizons for what in BAYES_COLUMNS}
    for i in range(len(atrophy)):
        # sums over stage x missing genotypes of joint weight x quadrature means; "stay" weights by S_k
        total = 0.0
        stay, delta_sum, delta_stay, square_stay = (np.zeros(len(horizons)) for _ in range(4))
        mci_weight, mci_stay, convert_sum, convert_stay = 0.0, *(np.zeros(len(horizons)) for _ in range(3))
        for score, weight in missing_call_combinations(dosage_causal[i], betas, freqs):
            p_stage = ndtr(thresholds[1:] - score) - ndtr(thresholds[:-1] - score)   # liability = score + N(0, 1)
            for s in range(len(STAGES)):
                joint = weight * p_stage[s] * image_likelihood[i, s]
                mean_rate = model.rate_intercept[s] + model.rate_per_genetic_score * score \
                    + model.rate_per_atrophy * atrophy[i]
                rate = np.maximum(0.0, mean_rate + model.rate_sd * z)                # (Q,)
                c0 = baseline_latent(s, score, atrophy[i], severity_noise, model)    # (Q,)
                later = recorded(c0[None, :] + rate[None, :] * months / 12.0)        # (H, Q)
                delta = later - recorded(c0)[None, :]
                kept = stay_probability(c0, rate, model)                             # (H, Q): S_k
                total += joint
                stay += joint * kept.mean(axis=1)
                delta_sum += joint * delta.mean(axis=1)
                delta_stay += joint * (delta * kept).mean(axis=1)
                square_stay += joint * (delta ** 2 * kept).mean(axis=1)
                if s == mci:  # conversion is asked of baseline MCI only (the image's stage likelihood cancels)
                    converted = later >= model.ad_from
                    mci_weight += weight * p_stage[s]
                    mci_stay += weight * p_stage[s] * kept.mean(axis=1)
                    convert_sum += weight * p_stage[s] * converted.mean(axis=1)
                    convert_stay += weight * p_stage[s] * (converted * kept).mean(axis=1)
        mean = delta_stay / stay
        for j, h in enumerate(horizons):
            out[f"expected_delta_cdr_sb_m{h}"][i] = mean[j]
            out[f"sd_delta_cdr_sb_m{h}"][i] = np.sqrt(max(square_stay[j] / stay[j] - mean[j] ** 2, 0.0))
            out[f"p_convert_m{h}"][i] = convert_stay[j] / mci_stay[j]
            out[f"population_expected_delta_cdr_sb_m{h}"][i] = delta_sum[j] / total
            out[f"population_p_convert_m{h}"][i] = convert_sum[j] / mci_weight
            out[f"p_observed_m{h}"][i] = recorded_share * stay[j] / total
    return pd.DataFrame(out)


def retention(trajectories: Trajectories, stage: np.ndarray) -> dict:
    """Share of the participants of each baseline stage still in the study at each planned follow-up."""
    visits = trajectories.visits[trajectories.visits["visit"] > 0]
    in_study = visits.pivot(index="participant", columns="visit", values="in_study").to_numpy(bool)
    return {STAGES[s]: [round(float(v), 4) for v in in_study[stage == s].mean(axis=0)]
            for s in range(len(STAGES)) if (stage == s).any()}


def progression_document(model: ProgressionModel, truth: pd.DataFrame, stage: np.ndarray,
                         trajectories: Trajectories) -> dict:
    """The ``progression`` block of ground_truth.json: the model, its parameters and the Bayes figures."""
    mci = stage == STAGES.index("MCI")

    def observed_mean(column: str, h: int, rows=slice(None), power: int = 1) -> float:
        """The expected mean of a column (or of its square) over the participants observed at h."""
        weight = truth.loc[rows, f"p_observed_m{h}"]
        return float((weight * truth.loc[rows, f"{column}_m{h}"] ** power).sum() / weight.sum())

    horizons = model.horizons()
    return {
        "model": {
            "schedule": "visit k planned at 12 k months, shifted by clip(N(0, 1), -3, 3) months, whole days; "
                        "follow-up missed w.p. miss_probability; CDR-SB n/a at an attended follow-up w.p. "
                        "cdr_sb_missing_probability (both MCAR)",
            "dropout": "during interval k a participant still in the study leaves it w.p. logistic(logit("
                       "dropout_per_interval) + dropout_logit_per_cdr_sb * min(c_k, 18)), c_k the latent CDR-SB "
                       "at visit k's planned time" + (" (0 per point: missing completely at random)"
                                                      if model.dropout_logit_per_cdr_sb == 0 else " (informative)"),
            "baseline_cdr_sb": "latent c0 = lo + (hi - lo) * Phi(S) in band[stage] = (lo, hi), S = severity_per_genetic_score"
                               " * G + severity_per_atrophy * (A - stage_atrophy[stage]) + severity_sd * N(0, 1); "
                               "recorded = round to 0.5, clip 0-18",
            "rate": "r = max(0, a[stage] + b_gene * G + b_atrophy * A + N(0, rate_sd^2)) per year; "
                    "G = sum_j beta_j (g_j - 2 p_j) (causal SNPs, true genotypes); A = mean planted-ROI lost "
                    "fraction of the baseline image - (1 - 0.92)",
            "trajectory": "latent CDR-SB(t) = c0 + r t / 12 (t in months)",
            "diagnosis": "AD if recorded CDR-SB >= 4.5, MCI if >= 1, else the baseline stage; never below it",
            "followup_images": ("a T1w at every attended follow-up: each ROI keeps the baseline image's fraction, "
                                "planted ROIs minus atrophy_per_cdr_sb * (c(t) - c0) = atrophy_per_cdr_sb * r t / 12, "
                                "plus N(0, followup_scan_sd^2) on every ROI; clip 0.3-1")
                               if model.followup_images else "none: images at the baseline session only",
            "bayes": "exact sums over stage and missing causal genotypes; quasi-Monte Carlo over rate noise, "
                     f"severity noise and the visit shift ({QUADRATURE_POINTS} scrambled Sobol points); "
                     "expected_* and p_convert_* are conditional on the follow-up being observed "
                     "(E[. S_k | X] / E[S_k | X], S_k = P(in the study at visit k | latent state)), population_* "
                     "are not",
        },
        "parameters": asdict(model),
        "horizons_months": horizons,
        "bayes_optimal_rmse_expected": {  # over the participants with the target: weighted by P(observed | X)
            str(h): float(np.sqrt(observed_mean("sd_delta_cdr_sb", h, power=2))) for h in horizons},
        "mean_expected_delta_cdr_sb": {str(h): observed_mean("expected_delta_cdr_sb", h) for h in horizons},
        "population_mean_delta_cdr_sb": {
            str(h): float(truth[f"population_expected_delta_cdr_sb_m{h}"].mean()) for h in horizons},
        "expected_observed_share": {str(h): float(truth[f"p_observed_m{h}"].mean()) for h in horizons},
        "retention_by_stage": retention(trajectories, stage),
        "mean_p_convert_mci": {
            str(h): observed_mean("p_convert", h, mci) if mci.any() else None for h in horizons},
        "population_mean_p_convert_mci": {
            str(h): float(truth.loc[mci, f"population_p_convert_m{h}"].mean()) if mci.any() else None
            for h in horizons},
        "files": {"truth": "progression_truth.tsv", "sessions": "bids/sub-*/sub-*_sessions.tsv",
                  **({"followup_images": "bids/sub-*/ses-<k>/anat/*_T1w.nii.gz and freesurfer/sub-*_ses-<k> "
                                         "(attended follow-ups, k >= 2)"} if model.followup_images else {})},
    }


def sessions_tables(trajectories: Trajectories, participants: pd.DataFrame,
                    rng: np.random.Generator) -> dict[str, pd.DataFrame]:
    """participant_id -> its sessions file (attended visits): session_id, acq_time, age, cdr_sb, diagnosis."""
    first_day = np.datetime64("2005-01-01") + rng.integers(0, 3650, size=len(participants)).astype("timedelta64[D]")
    visits = trajectories.visits[trajectories.visits["attended"]]
    tables = {}
    for i, rows in visits.groupby("participant"):
        days = np.round(rows["months"].to_numpy() * DAYS_PER_MONTH).astype("timedelta64[D]")
        tables[participants["participant_id"].iloc[i]] = pd.DataFrame({
            "session_id": [f"ses-{k + 1}" for k in rows["visit"]],
            "acq_time": [f"{d}T09:00:00" for d in first_day[i] + days],
            "age": np.round(participants["age"].iloc[i] + rows["months"].to_numpy() / 12.0, 2),
            "cdr_sb": rows["cdr_sb"].to_numpy(),
            "diagnosis": [STAGES[s] for s in rows["stage"]]})
    return tables


SESSIONS_SIDECAR = {
    "acq_time": {"Description": "Date of the visit (time of day fixed at 09:00)"},
    "age": {"Description": "Age at the visit", "Units": "year"},
    "cdr_sb": {"Description": "CDR Sum of Boxes (0-18, steps of 0.5)"},
    "diagnosis": {"Description": "Clinical stage at the visit", "Levels": {
        "NC": "normal cognition", "SMC": "subjective memory complaint", "MCI": "mild cognitive impairment",
        "AD": "Alzheimer's disease"}},
}


def write_longitudinal(out, model: ProgressionModel, seed: int, participants: pd.DataFrame, stage: np.ndarray,
                       genetic_score: np.ndarray, dosage_causal: np.ndarray, betas: np.ndarray, freqs: np.ndarray,
                       thresholds: np.ndarray, planted_counts: np.ndarray, planted_base: np.ndarray,
                       image_likelihood: np.ndarray) -> tuple[dict, Trajectories]:
    """Draw the visits, write each participant's sessions file, bids/sessions.json and progression_truth.tsv;
    return ground_truth.json's ``progression`` block and the drawn trajectories (for the follow-up images)."""
    out = Path(out)
    rng = np.random.default_rng([seed, STREAM])  # its own stream: the cohort's other draws stay as they were
    atrophy = observed_atrophy(planted_counts, planted_base, model)
    trajectories = simulate(stage, genetic_score, atrophy, model, rng)
    for participant, table in sessions_tables(trajectories, participants, rng).items():
        to_tsv(table, out / "bids" / participant / f"{participant}_sessions.tsv", na_rep="n/a")
    (out / "bids" / "sessions.json").write_text(json.dumps(SESSIONS_SIDECAR, indent=2) + "\n")
    bayes = bayes_progression(dosage_causal, betas, freqs, thresholds, image_likelihood, atrophy, model, seed)
    not_mci = stage != STAGES.index("MCI")
    for h in model.horizons():
        bayes.loc[not_mci, [f"p_convert_m{h}", f"population_p_convert_m{h}"]] = np.nan  # asked of baseline MCI only
    truth = pd.concat([pd.DataFrame({
        "participant_id": participants["participant_id"], "stage": [STAGES[s] for s in stage],
        "genetic_score": np.round(genetic_score, 6), "atrophy": np.round(atrophy, 6),
        "latent_baseline_cdr_sb": np.round(trajectories.latent_baseline, 6),
        "rate_per_year": np.round(trajectories.rate, 6)}), bayes.round(6)], axis=1)
    to_tsv(truth, out / "progression_truth.tsv", na_rep="n/a")
    return progression_document(model, bayes, stage, trajectories), trajectories


def followup_fractions(baseline: np.ndarray, planted: np.ndarray, trajectories: Trajectories, model: ProgressionModel,
                       rng: np.random.Generator) -> list[tuple[int, int, np.ndarray]]:
    """(participant index, visit k, kept fraction of every ROI) of each attended follow-up (module docstring, 5).

    baseline: (n, R) the baseline images' kept fractions; planted: (R,) bool."""
    visits = trajectories.visits
    rows = []
    for visit in visits[(visits["visit"] > 0) & visits["attended"]].itertuples():
        decline = trajectories.rate[visit.participant] * visit.months / 12.0     # c(t) - c0
        fractions = baseline[visit.participant] - model.atrophy_per_cdr_sb * decline * planted \
            + rng.normal(0.0, model.followup_scan_sd, size=len(planted))
        rows.append((int(visit.participant), int(visit.visit), np.clip(fractions, 0.3, 1.0)))
    return rows
