"""Longitudinal synthetic cohorts: sessions files consistent with the planted trajectories, the cohort's
other draws unchanged, and Bayes predictions that are calibrated and beat the classical reference."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from rgenima_app import STAGES
from rgenima_app.bids.tsv import read_tsv
from rgenima_app.progression.classical import fit_conversion, fit_delta_regression
from rgenima_app.progression.targets import load_progression_targets, read_visits
from rgenima_app.synthetic import DEFAULT_PLANTED_GENES, DEFAULT_PLANTED_ROIS, PRESETS, GeneratorParameters
from rgenima_app.synthetic import generate_cohort
from rgenima_app.synthetic.cohort import draw_genotypes, image_likelihood, kept_counts, stage_thresholds
from rgenima_app.synthetic.progression import (ProgressionModel, bayes_progression, observed_atrophy, recorded,
                                               simulate)


def params(n, seed):
    spec = PRESETS["tiny"]
    return GeneratorParameters(preset="tiny", seed=seed, n_participants=n, sessions=1, grid=spec["grid"],
                               voxel_mm=spec["voxel_mm"], snps_per_gene=spec["snps_per_gene"],
                               planted_rois=list(DEFAULT_PLANTED_ROIS), planted_genes=list(DEFAULT_PLANTED_GENES))


@pytest.fixture(scope="module")
def cohorts(tmp_path_factory):
    root = tmp_path_factory.mktemp("longitudinal")
    generate_cohort(root / "cross", params(16, 9), progress=False)
    generate_cohort(root / "long", params(16, 9), progress=False, progression=ProgressionModel(visits=3))
    return root / "cross", root / "long"


def test_the_cohort_draws_are_those_of_the_cross_sectional_cohort(cohorts):
    cross, long = cohorts
    a, b = read_tsv(cross / "ground_truth.tsv"), read_tsv(long / "ground_truth.tsv")
    assert a.drop(columns="session").equals(b.drop(columns="session")) and set(b["session"]) == {1}
    assert (cross / "bids" / "participants.tsv").read_text() == (long / "bids" / "participants.tsv").read_text()
    assert not list((cross / "bids").glob("sub-*/*_sessions.tsv")) and not (cross / "progression_truth.tsv").exists()
    assert "progression" not in json.loads((cross / "ground_truth.json").read_text())


def test_sessions_files_follow_the_planted_trajectories(cohorts):
    _, long = cohorts
    truth = read_tsv(long / "progression_truth.tsv").set_index("participant_id")
    participants = read_tsv(long / "bids" / "participants.tsv").set_index("participant_id")
    visits = read_visits(long / "bids")
    assert len(visits.groupby("participant")) == 16
    for label, rows in visits.groupby("participant"):
        p = f"sub-{label}"
        t = truth.loc[p]
        assert rows.iloc[0]["session"] == "1" and rows.iloc[0]["diagnosis"] == participants.loc[p, "diagnosis"]
        assert (long / "bids" / p / "ses-1" / "anat" / f"{p}_ses-1_T1w.nii.gz").exists()
        assert not (long / "bids" / p / "ses-2").exists()                       # images at baseline only
        expected = recorded(t.latent_baseline_cdr_sb + t.rate_per_year * rows["months"].to_numpy() / 12)
        given = rows["cdr_sb"].to_numpy(float)
        assert np.allclose(given[~np.isnan(given)], expected[~np.isnan(given)])
        order = [STAGES.index(d) for d in rows["diagnosis"]]
        assert order == sorted(order) and order[0] == STAGES.index(t.stage)     # never below baseline
        planned = 12.0 * (rows["session"].astype(int) - 1)                    # ses-k+1 is planned at 12 k months
        assert ((rows["months"] - planned).abs() <= 3.0 + 1 / 30).all()          # shifted at most 3 months
    document = json.loads((long / "ground_truth.json").read_text())["progression"]
    assert document["horizons_months"] == [12, 24] and set(document["bayes_optimal_rmse_expected"]) == {"12", "24"}
    mci = truth["stage"] == "MCI"
    assert truth.loc[~mci, "p_convert_m24"].isna().all() and truth.loc[mci, "p_convert_m24"].between(0, 1).all()
    targets = load_progression_targets(long / "bids", 24, 6)
    assert len(targets.delta) + (targets.excluded["target"] == "delta_cdr_sb").sum() == 16
    assert (targets.delta["followup_session"] == "3").all()                     # the 24-month visit


def test_bayes_predictions_are_calibrated_and_beat_the_classical_reference():
    """A large cohort as numbers (the generator's own functions, no images): the Bayes prediction of
    ΔCDR-SB at 24 months has mean residual 0, the RMSE the generator expects, and a lower RMSE than the
    sparse regression and the training mean; its conversion probability is calibrated, beats the
    sparse logistic regression's log-loss, and separates converters from stable MCI (the baseline severity
    inside the MCI band follows the planted atrophy and genes, so conversion is predictable)."""
    rng = np.random.default_rng(0)
    n, model = 5000, ProgressionModel(visits=3)
    freqs, betas = rng.uniform(0.2, 0.45, 5), np.full(5, 0.9)
    snps = pd.DataFrame({"freq": freqs, "role": "ordinary"})
    observed = draw_genotypes(snps, n, 0.01, rng)
    true = np.where(np.isnan(observed), rng.binomial(2, np.broadcast_to(freqs, observed.shape)), observed)
    thresholds = stage_thresholds(betas, freqs)
    score = (true - 2 * freqs) @ betas
    stage = np.searchsorted(thresholds[1:-1], score + rng.normal(size=n))
    base = np.array([36, 36, 301, 289, 32])
    means = 0.92 - np.outer((0.0, 0.03, 0.06, 0.10), np.ones(5))
    counts = kept_counts(base, np.clip(means[stage] + rng.normal(0, 0.04, (n, 5)), 0.3, 1.0))
    likelihood = image_likelihood(counts, base, means, 0.04)
    atrophy = observed_atrophy(counts, base, model)
    visits = simulate(stage, score, atrophy, model, rng).visits
    bayes = bayes_progression(observed, betas, freqs, thresholds, likelihood, atrophy, model, seed=0)
    follow = visits[visits["visit"] == 2].set_index("participant")
    base_cdr = visits[visits["visit"] == 0].set_index("participant")["cdr_sb"]
    keep = (follow["attended"] & follow["cdr_sb"].notna()).to_numpy()
    delta = (follow["cdr_sb"] - base_cdr).to_numpy()
    x = np.hstack([counts, np.where(np.isnan(observed), 2 * freqs, observed)])
    names = [f"roi{j}" for j in range(5)] + [f"snp{j}" for j in range(5)]
    rows = np.flatnonzero(keep)
    train, validation, test = rows[:2500], rows[2500:3200], rows[3200:]

    prediction = bayes["expected_delta_cdr_sb_m24"].to_numpy()
    residual = delta[test] - prediction[test]
    assert abs(residual.mean()) < 3 * residual.std() / np.sqrt(len(test))
    rmse = {"bayes": np.sqrt(np.mean(residual ** 2)),
            "mean": np.sqrt(np.mean((delta[test] - delta[train].mean()) ** 2))}
    fit = fit_delta_regression(x[train], delta[train], x[validation], delta[validation], x[test], names, seed=0)
    rmse["classical"] = np.sqrt(np.mean((delta[test] - fit.prediction) ** 2))
    expected = np.sqrt(np.mean(bayes["sd_delta_cdr_sb_m24"].to_numpy()[test] ** 2))
    assert rmse["bayes"] == pytest.approx(expected, rel=0.06)
    assert rmse["bayes"] < rmse["classical"] < rmse["mean"], rmse

    mci = rows[stage[rows] == STAGES.index("MCI")]
    converted = (follow["cdr_sb"].to_numpy() >= 4.5)
    p = bayes["p_convert_m24"].to_numpy()
    fit_rows, test_rows = mci[:900], mci[900:]
    assert abs(p[test_rows].mean() - converted[test_rows].mean()) < 3 * np.sqrt(0.25 / len(test_rows))
    classical, _ = fit_conversion(x[fit_rows[:700]], converted[fit_rows[:700]], x[fit_rows[700:]],
                                  converted[fit_rows[700:]], x[test_rows], names, seed=0)

    def log_loss(q):
        q = np.clip(q, 1e-9, 1 - 1e-9)
        return -np.mean(np.where(converted[test_rows], np.log(q), np.log(1 - q)))

    assert log_loss(p[test_rows]) < log_loss(classical)
    assert roc_auc_score(converted[test_rows], p[test_rows]) > 0.8
    assert roc_auc_score(converted[test_rows], classical) > 0.7
