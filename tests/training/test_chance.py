"""The chance check end to end: a tiny model trained on a cohort whose diagnoses were shuffled (labels that
carry no signal) is found not to beat chance, and every output says so: the evaluation table, the bundle
and its MODEL_CARD, the training figure and log, ``participant --model``'s log and subject reports, and the
group analysis, whose stage-specific ROIs, stable genes and enrichment are marked not interpretable."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest

from helpers import run_rgenima
from rgenima_app import STAGES
from rgenima_app.analysis.metrics import chance_check
from rgenima_app.training.settings import EvaluationSettings
from training.conftest import train_args, write_train_config

MODEL = "nosignal"


@pytest.fixture(scope="module")
def no_signal(train_cohort, tmp_path_factory):
    """The 24-participant training cohort with its diagnoses permuted between participants (images and
    genotypes untouched), trained with the tiny config (no baselines), then predicted and analysed."""
    root = tmp_path_factory.mktemp("nosignal")
    cohort = root / "cohort"
    shutil.copytree(train_cohort / "bids", cohort / "bids")
    for part in ("freesurfer", "genotypes"):
        os.symlink(train_cohort / part, cohort / part)
    table = pd.read_csv(cohort / "bids" / "participants.tsv", sep="\t")
    table["diagnosis"] = np.random.default_rng(19).permutation(table["diagnosis"].to_numpy())
    table.to_csv(cohort / "bids" / "participants.tsv", sep="\t", index=False)
    out = root / "out"
    config = write_train_config(root / "train.toml", name=MODEL)
    train = run_rgenima(*train_args(cohort, out, config))
    assert train.returncode == 0, train.stderr[-3000:]
    bundle = out / "models" / MODEL
    common = ["--fs-subjects-dir", cohort / "freesurfer", "--skip-bids-validation", "--nprocs", "1"]
    participant = run_rgenima(cohort / "bids", out, "participant", "--model", bundle, "--genotypes",
                              cohort / "genotypes" / "cohort.bed", *common)
    assert participant.returncode == 0, participant.stderr[-3000:]
    analysis = root / "analysis.toml"
    analysis.write_text("[analysis]\nn_boot = 50\nroi_top_k = 5\ngene_top = 5\n")
    group = run_rgenima(cohort / "bids", out, "group", "--model", bundle, "--train-config", analysis, *common)
    assert group.returncode == 0, group.stderr[-3000:]
    return out, train, participant, group


def test_evaluation_table_holds_the_check_and_the_verdict(no_signal):
    out, train, _, _ = no_signal
    table = pd.read_csv(out / f"desc-{MODEL}_evaluation.tsv", sep="\t", dtype={"beats_chance": str})
    predictions = pd.read_csv(out / f"desc-{MODEL}_testpredictions.tsv", sep="\t")
    assert {"majority_rate", "permutation_p", "beats_chance"} <= set(table.columns)
    for model, rows in table.groupby("model"):  # R-GenIMA and the classical reference, same columns
        mine = predictions[predictions["model"] == model]
        # recomputed from the written test predictions with the run's seed and the default settings
        check = chance_check(list(mine["diagnosis"]), mine[[f"p_{s}" for s in STAGES]].to_numpy(),
                             n_permutations=EvaluationSettings().permutations, alpha=EvaluationSettings().alpha,
                             seed=0, groups=list(mine["participant_id"]))
        assert rows["majority_rate"].nunique() == 1
        assert rows["majority_rate"].iloc[0] == pytest.approx(check.majority_rate)
        assert rows["permutation_p"].iloc[0] == pytest.approx(check.p_value)
        assert set(rows["beats_chance"]) == {"true" if check.beats_chance else "false"}
    model_rows = table[table["model"] == MODEL]
    assert set(model_rows["beats_chance"]) == {"false"}  # shuffled labels: nothing to learn
    majority = predictions.loc[predictions["model"] == MODEL, "diagnosis"].value_counts(normalize=True).max()
    assert model_rows["majority_rate"].iloc[0] == pytest.approx(majority)
    sidecar = json.loads((out / f"desc-{MODEL}_evaluation.json").read_text())
    assert {"majority_rate", "permutation_p", "beats_chance"} <= set(sidecar)
    assert "DOES NOT BEAT CHANCE" in train.stderr  # the training log's banner


def test_bundle_model_card_and_training_figure_carry_the_banner(no_signal):
    out, _, _, _ = no_signal
    bundle = out / "models" / MODEL
    chance = json.loads((bundle / "rgenima.json").read_text())["metrics"]["chance"]
    assert chance["beats_chance"] is False and chance["statistic"] == "balanced_accuracy"
    assert chance["n_permutations"] == 1000 and 0 < chance["p_value"] <= 1 and chance["unit"] == "participant"
    card = (bundle / "MODEL_CARD.md").read_text()
    assert card.index("> **WARNING: THE MODEL DOES NOT BEAT CHANCE") < card.index("## Model")
    assert "| beats chance | NO |" in card and "| majority-class rate |" in card
    svg = (out / "figures" / f"desc-{MODEL}_training.svg").read_text()
    assert "DOES NOT BEAT CHANCE" in svg


def test_participant_log_and_every_subject_report_carry_the_banner(no_signal):
    out, _, participant, _ = no_signal
    assert f"model {MODEL}: THE MODEL DOES NOT BEAT CHANCE" in participant.stderr
    reports = sorted(out.glob("sub-*.html"))
    assert len(reports) == 24
    for report in reports:
        text = report.read_text()
        assert 'class="chance fails"' in text and "This model does not beat chance" in text, report.name


def test_group_analysis_marks_its_findings_not_interpretable(no_signal):
    out, _, _, group = no_signal
    assert "NOT INTERPRETABLE" in group.stderr
    for suffix in ("roistability", "generanking", "geneenrichment"):
        table = pd.read_csv(out / f"desc-{MODEL}_{suffix}.tsv", sep="\t", dtype={"interpretable": str})
        assert len(table) and set(table["interpretable"]) == {"false"}, suffix  # still computed, labelled
        sidecar = json.loads((out / f"desc-{MODEL}_{suffix}.json").read_text())
        assert sidecar["Interpretable"] is False and sidecar["ChanceCheck"]["model"]["beats_chance"] is False
    metrics = json.loads((out / f"desc-{MODEL}_metrics.json").read_text())
    assert {"beats_chance", "majority_rate", "p_value"} <= set(metrics["ChanceCheck"])
    html = (out / "group.html").read_text()
    assert "This model does not beat chance: the findings below are not interpretable." in html
    assert html.count('class="not-interpretable"') == 3
    # --reports-only re-renders the page from the tables, verdict included
    (out / "group.html").unlink()
    rerun = run_rgenima(out.parent / "cohort" / "bids", out, "group", "--model", out / "models" / MODEL,
                        "--reports-only", "--skip-bids-validation")
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    again = (out / "group.html").read_text()
    assert again.count('class="not-interpretable"') == 3 and 'class="chance fails"' in again
