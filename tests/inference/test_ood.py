"""The out-of-distribution score (models/distribution.py; docs/inference.md, "Out-of-distribution score").

Statistics on plain arrays; the training glue (workflows/train.py); and ``participant --model`` end to
end with a bundle whose training distribution was fitted on synthetic phantoms: held-out participants of
that synthetic cohort are not flagged on their images, and real adult FreeSurfer subjects (../shared/data,
skipped when absent) are flagged, in the predictions table, the sidecar, the log and the report.
"""
from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from helpers import make_tiny_cohort, real_freesurfer_bids, run_rgenima
from inference_helpers import tiny_model
from rgenima_app.imaging.roi_table import N_ROIS
from rgenima_app.imaging.rois import roi_morphometry
from rgenima_app.models.bundle import load_bundle, save_bundle, training_summary
from rgenima_app.models.distribution import (UNAVAILABLE, conformal_threshold, fit_distribution, missing_fraction,
                                             roi_features, score_sample)
from rgenima_app.models.tiny_llm import train_tiny_tokenizer

MODEL = "phantom"
N_COHORT, N_TRAIN = 32, 22
REAL = {"r01": ("fs6", "sub-01", "T1.mgz"), "r07": ("fs6", "sub-07", "T1.mgz"), "bert": ("fs7", "bert", "norm.mgz")}


# ------------------------------------------------------------------------------------------ statistics
def test_in_distribution_draws_are_rarely_flagged_and_shifted_ones_always():
    rng = np.random.default_rng(0)
    n_train, n_held, n_features = 30, 400, 2 * N_ROIS
    sd = rng.uniform(0.05, 0.5, n_features)
    draw = lambda n: rng.normal(0.0, sd, size=(n, n_features))  # noqa: E731
    train = draw(n_train)
    distribution = fit_distribution([f"p{i}" for i in range(n_train)], features=train)
    image = distribution["image"]
    assert len(image["loo_scores"]) == n_train and image["threshold"] == max(image["loo_scores"])  # n + 1 < 100
    held = [score_sample(distribution, features=x) for x in draw(n_held)]
    rate = np.mean([h.flag for h in held])
    assert rate <= 2 / (n_train + 1)   # the calibration promises about 1 / (n + 1)
    shifted = [score_sample(distribution, features=x + 3 * sd) for x in draw(20)]
    assert all(s.flag and s.score > 1 for s in shifted)
    assert all("ROI volumes and intensities" in s.reasons[0] and "|z|" in s.reasons[0] for s in shifted)


def test_conformal_threshold_is_the_finite_sample_quantile():
    scores = np.arange(1, 201, dtype=float)          # n = 200: rank ceil(0.99 * 201) = 199
    assert conformal_threshold(scores, 0.01) == 199.0
    assert conformal_threshold(scores[:20], 0.01) == 20.0   # rank beyond n: the largest
    assert conformal_threshold(scores[:20], 0.2) == 17.0    # ceil(0.8 * 21) = 17


def test_genotype_missingness_and_age_components():
    distribution = fit_distribution(["a", "b", "c", "d"], missingness=np.array([0.0, 0.02, 0.05, 0.0]),
                                    ages=np.array([61.0, 70.0, np.nan, 88.0]))
    assert distribution["age"] == {"min": 61.0, "max": 88.0, "n": 3}
    assert distribution["genotype_missingness"]["threshold"] == pytest.approx(0.15)
    inside = score_sample(distribution, missingness=0.1, age=75.0)
    assert inside.available and not inside.flag and inside.score <= 1
    # the oldest training participant is inside its own range, whatever the rounding of the mid-point
    edge = fit_distribution(["a", "b"], ages=np.array([61.4, 85.73]))
    assert not score_sample(edge, age=85.73).flag and not score_sample(edge, age=61.4).flag
    assert score_sample(edge, age=85.74).flag
    young = score_sample(distribution, missingness=0.0, age=39.0)
    assert young.flag and any("age 39 outside the training range 61-88" in r for r in young.reasons)
    unmatched = score_sample(distribution, missingness=1.0, age=70.0)
    assert unmatched.flag and any("100.0% of the panel SNPs imputed" in r for r in unmatched.reasons)
    assert missing_fraction(pd.DataFrame({"imputed": [True, False, False, False]})) == 0.25


def test_without_a_stored_distribution_the_score_is_unavailable_and_says_why():
    for distribution in (None, {}):
        result = score_sample(distribution, features=np.zeros(2 * N_ROIS), missingness=0.0, age=70.0)
        assert result.score is None and result.flag is None and result.note == UNAVAILABLE
        assert result.to_dict()["Available"] is False


def _morph(rng, scale=1.0):
    from rgenima_app.imaging.roi_table import load_roi_table

    rois = load_roi_table()
    voxels = rng.integers(50, 5000, N_ROIS)
    return pd.DataFrame({"index": rois["index"], "name": rois["name"], "label": rois["label"], "voxels": voxels,
                         "volume_mm3": voxels * 1.0, "intensity_mean": scale * rng.uniform(40, 120, N_ROIS)})


def test_roi_features_follow_the_model_normalisation():
    morph = _morph(np.random.default_rng(1))
    brighter = morph.assign(intensity_mean=2 * morph["intensity_mean"])
    np.testing.assert_allclose(roi_features(morph, "wm"), roi_features(brighter, "wm"))  # white matter = 1
    assert not np.allclose(roi_features(morph, "none"), roi_features(brighter, "none"))
    absent = morph.assign(volume_mm3=morph["volume_mm3"].where(morph.index != 5, 0.0),
                          intensity_mean=morph["intensity_mean"].where(morph.index != 5, np.nan))
    features = roi_features(absent, "wm")
    assert features[5] == 0.0 and np.isnan(features[N_ROIS + 5])
    # a distribution with an ROI absent everywhere is valid JSON (no NaN) and scores a sample lacking it
    distribution = fit_distribution(["a", "b", "c", "d"], features=np.vstack([features] * 4))
    json.dumps(distribution, allow_nan=False)
    assert score_sample(distribution, features=features).flag is False


def test_training_stores_the_distribution_of_training_and_validation_participants():
    from rgenima_app.training.data import CohortSample
    from rgenima_app.training.settings import TrainSettings
    from rgenima_app.workflows.train import training_distribution

    rng = np.random.default_rng(2)
    samples = [CohortSample(f"sub-{i}", str(i), None, "NC", morph=_morph(rng)) for i in range(6)]
    genotypes = {str(i): pd.DataFrame({"imputed": [i == 0, False, False, False]}) for i in range(6)}
    distribution = training_distribution(samples, genotypes, TrainSettings(), {"1": 60.0, "2": 80.0},
                                         with_genotypes=True)
    assert distribution["n_participants"] == 6 and len(distribution["image"]["loo_scores"]) == 6
    assert distribution["genotype_missingness"]["max"] == 0.25
    assert distribution["age"] == {"min": 60.0, "max": 80.0, "n": 2}
    image_only = training_distribution(samples, genotypes, TrainSettings(), {}, with_genotypes=False)
    assert "genotype_missingness" not in image_only and "age" not in image_only and "image" in image_only


# ------------------------------------------------------------------------------------------ end to end
def _features(subject_dir) -> np.ndarray:
    mri = subject_dir / "mri"
    return roi_features(roi_morphometry(mri / "T1.mgz", mri / "aparc+aseg.mgz"), "wm")


@pytest.fixture(scope="module")
def phantom_model(tmp_path_factory):
    """A synthetic cohort; a bundle whose distribution is fitted on its first N_TRAIN participants (as
    ``group --train`` does, with their ages) — an image-only model, so every sample is read the same way."""
    root = tmp_path_factory.mktemp("ood")
    cohort = make_tiny_cohort(root / "cohort", n_participants=N_COHORT, seed=5)
    participants = pd.read_csv(cohort / "bids" / "participants.tsv", sep="\t")
    train = list(participants["participant_id"][:N_TRAIN])
    distribution = fit_distribution(train, features=np.vstack([_features(cohort / "freesurfer" / p) for p in train]),
                                    ages=participants["age"][:N_TRAIN].to_numpy(float))
    model = tiny_model(train_tiny_tokenizer(1024, 0))
    bundle = save_bundle(root / "models" / MODEL, model, training=training_summary(train), name=MODEL,
                         distribution=distribution)
    return cohort, participants, bundle


def _run(bundle, bids, subjects_dir, out):
    result = run_rgenima(bids, out, "participant", "--model", bundle, "--fs-subjects-dir", subjects_dir,
                         "--fs-no-reconall", "--roi-size", "8", "--skip-bids-validation", "-w", out.parent / "work")
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _prediction(out, participant):
    path = out / participant / f"{participant}_desc-{MODEL}_predictions.tsv"
    return pd.read_csv(path, sep="\t").iloc[0], json.loads(path.with_suffix(".json").read_text())


def test_bundle_round_trip_keeps_the_distribution(phantom_model):
    _, _, bundle = phantom_model
    loaded = load_bundle(bundle)
    assert loaded.distribution["n_participants"] == N_TRAIN and loaded.distribution["image"]["threshold"] > 0
    assert "Out-of-distribution check against the 22 training participants" in (bundle / "MODEL_CARD.md").read_text()


def test_held_out_participants_of_the_training_cohort_are_not_flagged(phantom_model, tmp_path):
    cohort, participants, bundle = phantom_model
    held = participants.iloc[N_TRAIN:]
    bids = tmp_path / "bids"
    shutil.copytree(cohort / "bids", bids, ignore=shutil.ignore_patterns(*participants["participant_id"][:N_TRAIN]))
    held.to_csv(bids / "participants.tsv", sep="\t", index=False)
    out = tmp_path / "out"
    result = _run(bundle, bids, cohort / "freesurfer", out)
    ages = load_bundle(bundle).distribution["age"]
    for row in held.itertuples():
        table, sidecar = _prediction(out, row.participant_id)
        ood = sidecar["OutOfDistribution"]
        assert ood["Available"] and ood["Components"]["image"]["ratio"] <= 1, ood   # images: in distribution
        outside_ages = not ages["min"] <= row.age <= ages["max"]
        assert isinstance(table["ood_flag"], (bool, np.bool_))
        assert table["ood_flag"] == outside_ages == ood["Flagged"]                  # only an age can flag one
        assert table["ood_score"] == pytest.approx(ood["Score"], abs=1e-6)
        assert ("Out of distribution</b>" in (out / f"{row.participant_id}.html").read_text()) == outside_ages
    any_outside = bool((held["age"] < ages["min"]).any() or (held["age"] > ages["max"]).any())
    assert ("OUT OF DISTRIBUTION" in result.stderr) == any_outside


@pytest.mark.shared_data
def test_real_adult_brains_are_flagged_on_a_phantom_trained_model(phantom_model, shared_data, tmp_path):
    _, _, bundle = phantom_model
    bids, subjects_dir = real_freesurfer_bids(shared_data, tmp_path, REAL)
    out = tmp_path / "out"
    result = _run(bundle, bids, subjects_dir, out)
    for label in REAL:
        table, sidecar = _prediction(out, f"sub-{label}")
        ood = sidecar["OutOfDistribution"]
        assert table["ood_flag"] and ood["Flagged"] and table["ood_score"] > 1, ood
        assert "age" not in ood["Components"]          # no ages given: the images alone flag them
        assert any("ROI volumes and intensities" in r for r in ood["Reasons"])
        assert f"sub-{label} is OUT OF DISTRIBUTION for the model {MODEL}" in result.stderr
        report = (out / f"sub-{label}.html").read_text()
        assert "Out of distribution</b>" in report and "prediction below is unreliable" in report
