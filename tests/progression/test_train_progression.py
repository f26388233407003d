"""``group --train`` with a progression target, end to end on a tiny longitudinal synthetic cohort (real
console script, tiny LLM on CPU): targets read from the sessions files, exclusions counted, a
participant-disjoint split of the participants with the target, R-GenIMA's regression head and the classical
reference evaluated on the same test participants, outputs that validate against bids_spec/derivatives.yaml,
a bundle that records the target and is refused by prediction."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from derivatives_spec import unlisted_files
from helpers import run_rgenima
from rgenima_app.bids.spec import check_outputs
from rgenima_app.progression.metrics import regression_metrics
from rgenima_app.progression.targets import load_progression_targets
from rgenima_app.progression.training import conformal_half_width, split_strata
from rgenima_app.synthetic import DEFAULT_PLANTED_GENES, DEFAULT_PLANTED_ROIS, PRESETS, GeneratorParameters
from rgenima_app.synthetic import generate_cohort
from rgenima_app.synthetic.progression import ProgressionModel
from training.conftest import TINY_TRAIN_CONFIG, train_args

TARGET = '\n[target]\nkind = "{kind}"\nhorizon_months = 24\nwindow_months = 6\n'


@pytest.fixture(scope="module")
def longitudinal_cohort(tmp_path_factory):
    spec = PRESETS["tiny"]
    params = GeneratorParameters(preset="tiny", seed=5, n_participants=40, sessions=1, grid=spec["grid"],
                                 voxel_mm=spec["voxel_mm"], snps_per_gene=spec["snps_per_gene"],
                                 planted_rois=list(DEFAULT_PLANTED_ROIS), planted_genes=list(DEFAULT_PLANTED_GENES))
    out = tmp_path_factory.mktemp("longitudinal") / "cohort"
    generate_cohort(out, params, progress=False, progression=ProgressionModel(visits=3))
    return out


@pytest.fixture(scope="module")
def trained(longitudinal_cohort, tmp_path_factory):
    out = tmp_path_factory.mktemp("progression") / "out"
    config = out.parent / "train.toml"
    config.write_text(TINY_TRAIN_CONFIG.format(name="prog", data="image_gene", folds=0, epochs=2, baselines="[]")
                      + TARGET.format(kind="progression"))
    result = run_rgenima(*train_args(longitudinal_cohort, out, config))
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


def test_targets_and_exclusions_are_those_of_the_sessions_files(trained, longitudinal_cohort):
    out, result = trained
    expected = load_progression_targets(longitudinal_cohort / "bids", 24, 6)
    table = pd.read_csv(out / "desc-prog_targets.tsv", sep="\t", keep_default_na=False, na_values=["n/a"],
                        dtype={"session": str, "followup_session": str})
    assert len(table) == 40 and (table["target"] == "delta_cdr_sb").all()
    included = table[table["included"]].set_index("participant_id")
    assert sorted(included.index) == sorted(f"sub-{p}" for p in expected.delta.index)
    for p, row in expected.delta.iterrows():
        assert included.loc[f"sub-{p}", "value"] == pytest.approx(row["delta_cdr_sb"])
        assert included.loc[f"sub-{p}", "session"] == row["baseline_session"]
    excluded = table[~table["included"]]
    assert len(excluded) == 40 - len(expected.delta) > 0          # the generator drops some follow-ups
    counts = expected.exclusion_counts()["delta_cdr_sb"]
    assert excluded["reason"].value_counts().to_dict() == counts
    assert f"{len(excluded)} of 40 participant(s) excluded" in result.stderr
    meta = json.loads((out / "models" / "prog" / "rgenima.json").read_text())
    target = meta["target"]
    assert (target["kind"], target["horizon_months"], target["window_months"]) == ("progression", 24.0, 6.0)
    assert target["n_participants"] == len(expected.delta) and target["excluded"] == counts


def test_split_is_participant_disjoint_over_the_participants_with_the_target(trained):
    out, _ = trained
    split = pd.read_csv(out / "desc-prog_split.tsv", sep="\t")
    targets = pd.read_csv(out / "desc-prog_targets.tsv", sep="\t")
    assert sorted(split["participant_id"]) == sorted(targets.loc[targets["included"], "participant_id"])
    assert split.groupby("participant_id")["role"].nunique().max() == 1
    assert set(split["role"]) == {"train", "validation", "test"}


def test_evaluation_and_predictions_of_both_models_on_the_same_test_participants(trained):
    out, _ = trained
    split = pd.read_csv(out / "desc-prog_split.tsv", sep="\t").set_index("participant_id")
    predictions = pd.read_csv(out / "desc-prog_progressionpredictions.tsv", sep="\t")
    assert set(predictions["model"]) == {"prog", "sparse_linear"}
    test = sorted(split.index[split["role"] == "test"])
    evaluation = pd.read_csv(out / "desc-prog_progressionevaluation.tsv", sep="\t")
    for model, rows in predictions.groupby("model"):
        assert sorted(rows["participant_id"]) == test
        assert np.isfinite(rows["predicted"]).all()
        # the table's RMSE is that of the predictions written beside it
        mine = evaluation[evaluation["model"] == model].set_index("metric")
        recomputed = regression_metrics(rows["observed"], rows["predicted"], n_boot=0)
        assert mine.loc["rmse", "value"] == pytest.approx(recomputed.value("rmse"))
        assert mine.loc["rmse", "ci_low"] <= mine.loc["rmse", "value"] <= mine.loc["rmse", "ci_high"]
        assert {"mae", "pearson_r", "rmse_delta_0", "rmse_delta_0_1", "rmse_delta_gt_1"} <= set(mine.index)
        # the split-conformal interval: one half-width from the validation residuals, or none with too few
        n_validation = int((split["role"] == "validation").sum())
        width = (rows["interval_high"] - rows["interval_low"]).to_numpy()
        if np.ceil((n_validation + 1) * 0.9) > n_validation:
            assert np.isnan(width).all()
        else:
            assert np.allclose(width, width[0]) and width[0] >= 0
    # R-GenIMA's head moved away from its starting point (the training mean): its predictions differ
    mine = predictions[predictions["model"] == "prog"]["predicted"]
    assert mine.std() > 0


def test_outputs_validate_and_prediction_with_the_bundle_is_refused(trained, longitudinal_cohort):
    out, _ = trained
    assert unlisted_files(out) == [] and check_outputs(out) == []
    card = (out / "models" / "prog" / "MODEL_CARD.md").read_text()
    assert "ΔCDR-SB at 24 ± 6 months" in card and "sparse_linear" in card
    result = run_rgenima(longitudinal_cohort / "bids", out.parent / "apply", "group", "--model", out / "models" / "prog",
                         "--genotypes", longitudinal_cohort / "genotypes" / "cohort.bed",
                         "--fs-subjects-dir", longitudinal_cohort / "freesurfer", "--skip-bids-validation")
    assert result.returncode != 0
    assert "predicts progression" in result.stderr and "Traceback" not in result.stderr


def test_split_strata_and_conformal_half_width():
    values = pd.Series(np.arange(24, dtype=float), index=[f"p{i}" for i in range(24)])
    strata = split_strata(values, "progression")
    assert strata.value_counts().tolist() == [6, 6, 6, 6] and strata["p0"] == "delta_q1" and strata["p23"] == "delta_q4"
    assert split_strata(pd.Series([1.0, 0.0], index=["a", "b"]), "conversion").tolist() == ["converter", "stable"]
    # 9 residuals, 90%: the ceil(10 * 0.9) = 9th smallest; 3 residuals: too few for 90% (NaN)
    assert conformal_half_width(np.array([-1, 2, 3, -4, 5, 6, 7, 8, -9.0])) == 9.0
    assert np.isnan(conformal_half_width(np.array([1.0, 2.0, 3.0])))


def test_conversion_target_trains_on_baseline_mci_only_and_reports_probabilities(tmp_path):
    spec = PRESETS["tiny"]
    params = GeneratorParameters(preset="tiny", seed=7, n_participants=80, sessions=1, grid=spec["grid"],
                                 voxel_mm=spec["voxel_mm"], snps_per_gene=spec["snps_per_gene"],
                                 planted_rois=list(DEFAULT_PLANTED_ROIS), planted_genes=list(DEFAULT_PLANTED_GENES))
    cohort = tmp_path / "cohort"
    generate_cohort(cohort, params, progress=False, progression=ProgressionModel(visits=3))
    config = tmp_path / "train.toml"
    config.write_text(TINY_TRAIN_CONFIG.format(name="conv", data="image_gene", folds=0, epochs=2, baselines="[]")
                      + TARGET.format(kind="conversion"))
    out = tmp_path / "out"
    result = run_rgenima(*train_args(cohort, out, config))
    assert result.returncode == 0, result.stderr[-3000:]
    assert check_outputs(out) == []
    expected = load_progression_targets(cohort / "bids", 24, 6).conversion
    targets = pd.read_csv(out / "desc-conv_targets.tsv", sep="\t")
    included = targets[targets["included"]].set_index("participant_id")
    assert sorted(included.index) == sorted(f"sub-{p}" for p in expected.index)
    assert (targets.loc[~targets["included"], "reason"] == "baseline diagnosis not MCI").sum() == \
        (pd.read_csv(cohort / "bids" / "participants.tsv", sep="\t")["diagnosis"] != "MCI").sum()
    predictions = pd.read_csv(out / "desc-conv_progressionpredictions.tsv", sep="\t")
    assert set(predictions["model"]) == {"conv", "sparse_logistic"}
    assert predictions["predicted"].between(0, 1).all() and predictions["interval_low"].isna().all()
    for p, row in predictions.iterrows():
        assert row["observed"] == float(expected.loc[row["participant_id"].removeprefix("sub-"), "converted"])
    evaluation = pd.read_csv(out / "desc-conv_progressionevaluation.tsv", sep="\t")
    assert set(evaluation["metric"]) == {"balanced_accuracy", "auc", "sensitivity", "specificity", "accuracy"}
    meta = json.loads((out / "models" / "conv" / "rgenima.json").read_text())
    assert meta["target"]["kind"] == "conversion" and meta["target"]["n_participants"] == len(expected)
