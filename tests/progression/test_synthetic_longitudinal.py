"""Longitudinal synthetic cohorts: sessions files consistent with the planted trajectories, the cohort's
other draws unchanged, informative dropout and the Bayes truth conditional on being observed, follow-up
images whose planted ROIs shrink with the decline, valid BIDS, and Bayes predictions that are calibrated
and beat the classical reference."""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

import nibabel as nib

from helpers import requires_validator
from rgenima_app import STAGES
from rgenima_app.bids.inputs import collect_t1w, read_participants
from rgenima_app.bids.tsv import read_tsv
from rgenima_app.imaging.roi_table import load_roi_table
from rgenima_app.progression.classical import fit_conversion, fit_delta_regression
from rgenima_app.progression.targets import load_progression_targets, read_visits
from rgenima_app.progression.training import progression_cohort
from rgenima_app.synthetic import DEFAULT_PLANTED_GENES, DEFAULT_PLANTED_ROIS, PRESETS, GeneratorParameters
from rgenima_app.synthetic import generate_cohort
from rgenima_app.synthetic.cohort import draw_genotypes, image_likelihood, kept_counts, stage_thresholds
from rgenima_app.synthetic.progression import (MCAR_DROPOUT, ProgressionModel, Trajectories, bayes_progression,
                                               observed_atrophy, recorded, simulate)
from rgenima_app.training.data import Cohort, labelled_samples


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


@pytest.fixture(scope="module")
def imaged(tmp_path_factory, cohorts):
    """The longitudinal cohort of ``cohorts`` again, with images at the follow-up visits."""
    out = tmp_path_factory.mktemp("longitudinal") / "imaged"
    generate_cohort(out, params(16, 9), progress=False, progression=ProgressionModel(visits=3, followup_images=True))
    return out


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


def planted_voxels(cohort, name: str) -> np.ndarray:
    """Voxels of each planted ROI in a FreeSurfer subject of the cohort (as its aparc+aseg holds them)."""
    truth = json.loads((cohort / "ground_truth.json").read_text())
    table = load_roi_table().set_index("name")
    labels = np.asarray(nib.load(str(cohort / "freesurfer" / name / "mri" / "aparc+aseg.mgz")).dataobj)
    return np.array([(labels == table.loc[roi, "label"]).sum() for roi in truth["planted_rois"]])


def test_followup_images_exist_for_attended_visits_only_and_change_nothing_else(cohorts, imaged):
    _, long = cohorts
    for name in ("progression_truth.tsv", "ground_truth.tsv", "bids/participants.tsv"):
        assert (imaged / name).read_text() == (long / name).read_text(), name
    assert json.loads((imaged / "ground_truth.json").read_text())["progression"]["parameters"]["followup_images"]
    followups = 0
    for sessions_file in sorted((imaged / "bids").glob("sub-*/sub-*_sessions.tsv")):
        participant = sessions_file.parent.name
        assert sessions_file.read_text() == (long / "bids" / participant / sessions_file.name).read_text()
        listed = set(read_tsv(sessions_file)["session_id"])
        on_disk = {d.name for d in sessions_file.parent.glob("ses-*")}
        assert on_disk == listed                       # an image at every attended visit, none at a missed one
        for session in listed:
            name = f"{participant}_{session}"
            assert (sessions_file.parent / session / "anat" / f"{name}_T1w.nii.gz").exists()
            assert (imaged / "freesurfer" / name / "mri" / "aparc+aseg.mgz").exists()
        # the baseline image is the cohort's: the same as without follow-up images
        baseline = f"{participant}_ses-1"
        assert (imaged / "freesurfer" / baseline / "mri" / "aparc+aseg.mgz").read_bytes() == \
            (long / "freesurfer" / baseline / "mri" / "aparc+aseg.mgz").read_bytes()
        followups += len(listed) - 1
    assert followups > 10


def test_planted_rois_shrink_with_the_decline(imaged):
    """Planted-ROI volume lost between baseline and each follow-up: 0.01 of the phantom's voxels per latent
    CDR-SB point gained (rate x years), within the scan noise (sd 0.005 per ROI) and voxel rounding."""
    truth = read_tsv(imaged / "progression_truth.tsv").set_index("participant_id")
    base = np.array(list(json.loads((imaged / "ground_truth.json").read_text())["model"]
                         ["planted_roi_base_voxels"].values()))
    progressors = stable = 0
    for label, rows in read_visits(imaged / "bids").groupby("participant"):
        p = f"sub-{label}"
        before = planted_voxels(imaged, f"{p}_ses-1")
        for row in rows.iloc[1:].itertuples():
            lost = (before - planted_voxels(imaged, f"{p}_ses-{row.session}")).sum() / base.sum()
            expected = 0.01 * truth.loc[p, "rate_per_year"] * row.months / 12.0
            assert lost == pytest.approx(expected, abs=0.012), (p, row.session)
            if expected >= 0.02:
                progressors += 1
                assert lost > 0.005
            elif expected == 0:
                stable += 1
    assert progressors >= 3 and stable >= 3, (progressors, stable)


def test_training_reads_the_baseline_image_of_a_cohort_with_followup_images(imaged):
    bids = imaged / "bids"
    t1w = collect_t1w(bids)
    assert {s.session for s in t1w} >= {"1", "2", "3"}
    cohort = Cohort(labelled_samples(t1w, read_participants(bids, required=True)))
    progression = progression_cohort(bids, "progression", 24, 6, cohort)
    assert len(cohort.samples) == len(progression.values) > 0
    assert {s.session for s in cohort.samples} == {"1"}
    targets = load_progression_targets(bids, 24, 6)
    assert sorted(s.participant for s in cohort.samples) == sorted(targets.delta.index)


def test_command_line_options_of_the_visits(tmp_path):
    def synthetic(out, *options):
        return subprocess.run([sys.executable, "-m", "rgenima_app.synthetic", str(tmp_path / out), "--n-participants",
                               "6", *options], capture_output=True, text=True)

    done = synthetic("mcar", "--visits", "2", "--followup-images", "--dropout", "mcar")
    assert done.returncode == 0, done.stderr
    parameters = json.loads((tmp_path / "mcar" / "ground_truth.json").read_text())["progression"]["parameters"]
    assert parameters["followup_images"] and parameters["dropout_logit_per_cdr_sb"] == 0
    assert parameters["dropout_per_interval"] == MCAR_DROPOUT["dropout_per_interval"]
    assert list((tmp_path / "mcar" / "bids").glob("sub-*/ses-2/anat/*_T1w.nii.gz"))
    for options in (["--followup-images"], ["--dropout", "mcar"]):
        bad = synthetic("bad", *options)
        assert bad.returncode == 2 and "--visits 2 or more" in bad.stderr and "Traceback" not in bad.stderr
        assert not (tmp_path / "bad").exists()


@requires_validator
@pytest.mark.parametrize("which", ["baseline images", "follow-up images"])
def test_longitudinal_cohort_is_valid_bids(cohorts, imaged, which):
    bids = (cohorts[1] if which == "baseline images" else imaged) / "bids"
    report = json.loads(subprocess.run(["bids-validator-deno", "--format", "json", str(bids)],
                                       capture_output=True, text=True).stdout)
    errors = [(i["code"], i.get("location")) for i in report["issues"]["issues"] if i["severity"] == "error"]
    assert errors == []
    assert sorted(report["summary"]["sessions"]) == (["1"] if which == "baseline images" else ["1", "2", "3"])


@dataclass
class Simulated:
    """A large cohort as numbers (the generator's own functions, no images) and its Bayes truth."""

    stage: np.ndarray
    observed: np.ndarray            # causal dosages with missing calls
    counts: np.ndarray              # planted-ROI voxel counts
    freqs: np.ndarray
    trajectories: Trajectories
    bayes: pd.DataFrame

    def at(self, visit: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(observed: the visit's CDR-SB recorded, ΔCDR-SB as recorded (NaN where n/a), ΔCDR-SB of everybody
        had nobody left and every CDR-SB been recorded)."""
        visits = self.trajectories.visits
        follow = visits[visits["visit"] == visit].set_index("participant")
        baseline = visits[visits["visit"] == 0].set_index("participant")["cdr_sb"].to_numpy()
        keep = (follow["attended"] & follow["cdr_sb"].notna()).to_numpy()
        t = self.trajectories
        full = recorded(t.latent_baseline + t.rate * follow["months"].to_numpy() / 12.0) - baseline
        return keep, follow["cdr_sb"].to_numpy() - baseline, full


def simulate_numbers(model: ProgressionModel, n: int = 5000, seed: int = 0) -> Simulated:
    rng = np.random.default_rng(seed)
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
    trajectories = simulate(stage, score, atrophy, model, rng)
    bayes = bayes_progression(observed, betas, freqs, thresholds, likelihood, atrophy, model, seed=0)
    return Simulated(stage, observed, counts, freqs, trajectories, bayes)


@pytest.fixture(scope="module")
def informative():
    return simulate_numbers(ProgressionModel(visits=3))


def test_informative_dropout_biases_complete_cases_and_the_conditional_truth_corrects_it(informative):
    """5,000 participants: the sicker leave more often, so the observed ΔCDR-SB at 24 months averages well
    below the planted population's (complete-case analysis is biased); the population truth E[Δ | X] is the
    planted population's, and the truth conditional on being observed is unbiased for the observed targets,
    overall and within quartiles of itself, with P(observed | X) calibrated."""
    sim = informative
    in_study = sim.trajectories.visits.query("visit == 2")["in_study"].to_numpy()
    stay = {s: in_study[sim.stage == STAGES.index(s)].mean() for s in STAGES}
    assert stay["NC"] > stay["MCI"] + 0.05 > stay["AD"] + 0.15, stay
    keep, delta, full = sim.at(2)
    bias = delta[keep].mean() - full.mean()
    se = full.std() / np.sqrt(keep.sum())
    assert bias < -0.1 and bias < -4 * se, (bias, se)                  # measurable: about -0.24 CDR-SB points
    population = sim.bayes["population_expected_delta_cdr_sb_m24"].to_numpy()
    assert abs(population.mean() - full.mean()) < 3 * se
    conditional = sim.bayes["expected_delta_cdr_sb_m24"].to_numpy()
    residual = delta[keep] - conditional[keep]
    assert abs(residual.mean()) < 3 * residual.std() / np.sqrt(keep.sum())
    quartile = pd.qcut(conditional, 4, labels=False)
    for q in range(4):
        r = residual[quartile[keep] == q]
        assert abs(r.mean()) < 3 * r.std() / np.sqrt(len(r)) + 0.01, (q, r.mean())
    # the observed are predicted to change less than everybody: the condition lowers the expected change
    assert (conditional[keep] - population[keep]).mean() < -0.01
    p_observed = sim.bayes["p_observed_m24"].to_numpy()
    for q in range(4):
        rows = pd.qcut(p_observed, 4, labels=False) == q
        assert abs(keep[rows].mean() - p_observed[rows].mean()) < 3 * np.sqrt(0.25 / rows.sum()), q


def test_under_strong_dropout_only_the_conditional_truth_is_unbiased():
    """Dropout that rises steeply with the latent CDR-SB (0.5 logit per point): within what X tells, those
    who stay declined less than those who left, so E[Δ | X] over everybody overestimates the observed
    targets by many standard errors, while E[Δ | X, observed] stays unbiased (and its conversion probability
    calibrated)."""
    sim = simulate_numbers(ProgressionModel(visits=3, dropout_logit_per_cdr_sb=0.5), seed=2)
    keep, delta, _ = sim.at(2)
    conditional = delta[keep] - sim.bayes["expected_delta_cdr_sb_m24"].to_numpy()[keep]
    population = delta[keep] - sim.bayes["population_expected_delta_cdr_sb_m24"].to_numpy()[keep]
    se = conditional.std() / np.sqrt(keep.sum())
    assert abs(conditional.mean()) < 3 * se and population.mean() < -4 * se, (conditional.mean(), population.mean(), se)
    mci = keep & (sim.stage == STAGES.index("MCI"))
    converted = sim.trajectories.visits.query("visit == 2")["cdr_sb"].to_numpy()[mci] >= 4.5
    p_conditional = sim.bayes["p_convert_m24"].to_numpy()[mci].mean()
    se = np.sqrt(p_conditional * (1 - p_conditional) / mci.sum())
    assert abs(converted.mean() - p_conditional) < 3 * se
    assert sim.bayes["population_p_convert_m24"].to_numpy()[mci].mean() - converted.mean() > 2 * se


def test_mcar_dropout_leaves_complete_cases_unbiased_and_both_truths_equal():
    sim = simulate_numbers(ProgressionModel(visits=3, **MCAR_DROPOUT), n=2000, seed=1)
    in_study = sim.trajectories.visits.query("visit == 2")["in_study"].to_numpy()
    assert abs(in_study[sim.stage == 0].mean() - in_study[sim.stage == 3].mean()) < 0.08
    keep, delta, full = sim.at(2)
    assert abs(delta[keep].mean() - full.mean()) < 4 * full.std() / np.sqrt(keep.sum())
    for what in ("expected_delta_cdr_sb", "p_convert"):
        assert np.allclose(sim.bayes[f"{what}_m24"], sim.bayes[f"population_{what}_m24"], equal_nan=True)
    assert np.allclose(sim.bayes["p_observed_m24"], 0.9 ** 2 * 0.95 * 0.98)


def test_bayes_predictions_are_calibrated_and_beat_the_classical_reference(informative):
    """The 5,000 simulated participants (informative dropout): the Bayes prediction of the observed
    ΔCDR-SB at 24 months has mean residual 0, the RMSE the generator expects, and a lower RMSE than the
    sparse regression and the training mean; its conversion probability is calibrated, beats the
    sparse logistic regression's log-loss, and separates converters from stable MCI (the baseline severity
    inside the MCI band follows the planted atrophy and genes, so conversion is predictable)."""
    sim = informative
    stage, counts, observed, freqs, bayes = sim.stage, sim.counts, sim.observed, sim.freqs, sim.bayes
    keep, delta, _ = sim.at(2)
    follow = sim.trajectories.visits.query("visit == 2").set_index("participant")
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
