"""``rgenima BIDS OUT group --train`` end to end on a tiny synthetic cohort (real console script)."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import kill_on_replace_env, rgenima_command, run_rgenima
from rgenima_app import STAGES
from rgenima_app.models.bundle import load_bundle
from rgenima_app.training.settings import BASELINES
from rgenima_app.training.classical import NAME as CLASSICAL
from training.conftest import bundle_test_probabilities, train_args, write_train_config


@pytest.fixture(scope="module")
def trained(train_cohort, tmp_path_factory):
    out = tmp_path_factory.mktemp("trained") / "out"
    config = write_train_config(out.parent / "train.toml", name="tiny", baselines=BASELINES)
    result = run_rgenima(*train_args(train_cohort, out, config))
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def test_split_is_participant_disjoint_and_stratified(trained, train_cohort):
    split = pd.read_csv(trained / "desc-tiny_split.tsv", sep="\t")
    roles = split.groupby("participant_id")["role"].nunique()
    assert (roles == 1).all()
    assert set(split["role"]) == {"train", "validation", "test"}
    truth = pd.read_csv(train_cohort / "bids" / "participants.tsv", sep="\t")
    assert sorted(split["participant_id"]) == sorted(truth["participant_id"])
    train_stages = set(split.loc[split["role"] == "train", "diagnosis"])
    assert train_stages == set(truth["diagnosis"])  # every stage is seen in training


def test_test_metrics_come_from_test_participants_only(trained):
    split = pd.read_csv(trained / "desc-tiny_split.tsv", sep="\t").set_index("participant_id")
    predictions = pd.read_csv(trained / "desc-tiny_testpredictions.tsv", sep="\t")
    assert set(split.loc[predictions["participant_id"], "role"]) == {"test"}
    assert set(predictions["model"]) == {"tiny", CLASSICAL, *BASELINES}
    predictions = predictions[predictions["model"] == "tiny"]
    assert len(predictions) == (split["role"] == "test").sum()
    proba = predictions[[f"p_{s}" for s in STAGES]].to_numpy()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    table = pd.read_csv(trained / "desc-tiny_evaluation.tsv", sep="\t")
    assert set(table["model"]) == {"tiny", CLASSICAL, *BASELINES}  # baselines: rows of the same table, same test set
    evaluation = table[table["model"] == "tiny"].set_index("metric")
    accuracy = (predictions["label"] == predictions["diagnosis"]).mean()
    assert evaluation.loc["accuracy", "value"] == pytest.approx(accuracy)
    assert evaluation.loc["accuracy", "ci_low"] <= accuracy <= evaluation.loc["accuracy", "ci_high"]
    for metric in ("macro_f1", "balanced_accuracy", "macro_auc", "recall_AD", "specificity_NC"):
        assert metric in evaluation.index


def test_llm_wholebrain_baseline_is_tested_on_exactly_the_split_test_participants(trained):
    """``trained`` runs every baseline; llm_wholebrain: a 16³ whole-brain ResNet token into the tiny LLM."""
    split = pd.read_csv(trained / "desc-tiny_split.tsv", sep="\t")
    predictions = pd.read_csv(trained / "desc-tiny_testpredictions.tsv", sep="\t")
    rows = predictions[predictions["model"] == "llm_wholebrain"]
    assert sorted(rows["participant_id"]) == sorted(split.loc[split["role"] == "test", "participant_id"])
    np.testing.assert_allclose(rows[[f"p_{s}" for s in STAGES]].sum(axis=1), 1.0, atol=1e-5)
    evaluation = pd.read_csv(trained / "desc-tiny_evaluation.tsv", sep="\t")
    metrics = evaluation[evaluation["model"] == "llm_wholebrain"].set_index("metric")
    assert {"accuracy", "macro_f1", "balanced_accuracy", "macro_auc"} <= set(metrics.index)
    assert metrics.loc["accuracy", "value"] == pytest.approx((rows["label"] == rows["diagnosis"]).mean())
    volumes = sorted((trained / ".work" / "wholebrain").glob("sub-*/*.npy"))
    assert len(volumes) == len(split) and np.load(volumes[0]).shape == (16, 16, 16)
    assert not list((trained / ".work" / "training").glob("*/baselines/llm_wholebrain/checkpoint"))


def test_bundle_reloads_predicts_and_knows_its_training_participants(trained, train_cohort):
    bundle_dir = trained / "models" / "tiny"
    predictions = pd.read_csv(trained / "desc-tiny_testpredictions.tsv", sep="\t")
    predictions = predictions[predictions["model"] == "tiny"]
    proba = bundle_test_probabilities(bundle_dir, train_cohort, trained / ".work", list(predictions["participant_id"]))
    np.testing.assert_allclose(proba, predictions[[f"p_{s}" for s in STAGES]].to_numpy(), atol=1e-5)
    bundle = load_bundle(bundle_dir)
    split = pd.read_csv(trained / "desc-tiny_split.tsv", sep="\t")
    for row in split.itertuples():
        assert bundle.was_trained_on(row.participant_id) == (row.role != "test")
    card = (bundle_dir / "MODEL_CARD.md").read_text()
    assert "Held-out test set" in card and "accuracy" in card
    meta = json.loads((bundle_dir / "rgenima.json").read_text())
    assert meta["name"] == "tiny" and meta["rois"]["size"] == 8 and meta["rois"]["mode"] == "stretch"
    assert meta["metrics"]["test"]["accuracy"]["value"] == pytest.approx((predictions["label"] == predictions["diagnosis"]).mean())
    panel = pd.read_csv(bundle_dir / "snp_panel.tsv", sep="\t")
    assert {"snp", "gene", "a1", "a2", "a1_freq"} <= set(panel.columns) and len(panel) > 0
    # the default in-fold screening: the 8 SNPs most associated with stage, their statistics recorded
    selection = meta["training"]["snp_selection"]
    assert selection["method"] == "anova_f" and selection["top"] == 8 and len(panel) == 8
    assert [s["snp"] for s in sorted(selection["selected"], key=lambda s: s["rank"])] == \
        list(panel.sort_values("screen_rank")["snp"])
    assert meta["training"]["qc"]["snps_passing_qc"] > 8
    assert "SNP selection" in card
    reference = meta["metrics"]["classical_reference"]
    assert reference["n_features"] == 109 + meta["training"]["qc"]["snps_passing_qc"]
    assert 0 < reference["C"] and reference["l1_ratio"] in (0.5, 1.0)
    # the own-ROI probe of the frozen RiT tokens (fitted on training, scored on test participants)
    probe = meta["training"]["token_probe"]
    assert len(probe["own_r2"]) == 109 and probe["n_eval"] == len(predictions)
    assert probe["median_own_r2"] == pytest.approx(np.nanmedian(list(probe["own_r2"].values())), abs=1e-3)
    assert "ROI tokens: a linear probe" in card and "only the CLS state is trained" in card


def test_bundle_stores_the_training_distribution(trained, train_cohort):
    """The out-of-distribution score's reference: the training and validation participants, no test one."""
    meta = json.loads((trained / "models" / "tiny" / "rgenima.json").read_text())
    distribution = meta["distribution"]
    split = pd.read_csv(trained / "desc-tiny_split.tsv", sep="\t")
    seen = split[split["role"].isin(["train", "validation"])]
    assert distribution["n_participants"] == seen["participant_id"].nunique()
    image = distribution["image"]
    assert len(image["loo_scores"]) == len(seen) and len(image["center"]) == 2 * 109
    assert image["threshold"] == pytest.approx(max(image["loo_scores"]))   # fewer than 99 participants
    ages = pd.read_csv(train_cohort / "bids" / "participants.tsv", sep="\t").set_index("participant_id")["age"]
    assert distribution["age"]["min"] == pytest.approx(ages[seen["participant_id"]].min())
    assert distribution["age"]["max"] == pytest.approx(ages[seen["participant_id"]].max())
    assert 0 <= distribution["genotype_missingness"]["max"] < distribution["genotype_missingness"]["threshold"]
    assert "Out-of-distribution check" in (trained / "models" / "tiny" / "MODEL_CARD.md").read_text()


def test_bundle_stores_the_training_mean_rit_tokens(trained):
    """Integrated gradients' reference at the participant level: each ROI's mean frozen RiT token over the
    training and validation samples (the token cache of the run), no test sample."""
    import torch
    from safetensors.torch import load_file

    from rgenima_app.training.tokens import weights_hash

    bundle = load_bundle(trained / "models" / "tiny")
    split = pd.read_csv(trained / "desc-tiny_split.tsv", sep="\t")
    seen = set(split.loc[split["role"].isin(["train", "validation"]), "participant_id"])
    cache = trained / ".work" / "tokens" / weights_hash(bundle.model.image_encoder)
    owner = lambda f: "sub-" + f.name.split("-")[1].split("_")[0]  # noqa: E731  sub-X[_ses-Y]-<patches>.safetensors
    files = [f for f in sorted(cache.glob("*.safetensors")) if owner(f) in seen]
    assert files and len({owner(f) for f in files}) == len(seen)
    expected = torch.stack([load_file(str(f))["tokens"] for f in files]).mean(0)
    torch.testing.assert_close(bundle.reference_tokens, expected)
    assert bundle.metadata["reference_tokens"]["n_samples"] == len(files)
    assert "mean RiT token over" in (trained / "models" / "tiny" / "MODEL_CARD.md").read_text()


def test_training_figure_and_curves(trained):
    svg = (trained / "figures" / "desc-tiny_training.svg").read_text()
    assert svg.lstrip().startswith("<svg") and "Stage 2" in svg
    meta = json.loads((trained / "models" / "tiny" / "rgenima.json").read_text())
    curves = meta["training"]["curves"]
    assert len(curves["stage1"]["train_loss"]) >= 1 and len(curves["stage2"]["train_loss"]) == 2
    assert len(curves["stage2"]["val_loss"]) == 2


def test_stage2_progress_reaches_the_log_without_a_terminal(trained):
    """Tests run without a terminal, so the progress bar is off: the log gets a line every 5% of the steps."""
    logs = "".join(p.read_text() for p in (trained / "logs").glob("*.log"))
    steps = [(int(a), int(b)) for a, b in re.findall(r"stage 2 step (\d+) of (\d+) \(epoch \d+\): loss", logs)]
    assert steps
    for step, total in steps:
        assert 1 <= step <= total and step % max(1, total // 20) == 0


def test_existing_bundle_is_never_overwritten(trained, train_cohort):
    weights = trained / "models" / "tiny" / "connector.safetensors"
    before = weights.read_bytes()
    other = write_train_config(trained.parent / "other.toml", name="tiny", epochs=3)  # other settings, same name
    result = run_rgenima(*train_args(train_cohort, trained, other))
    assert result.returncode == 73
    assert "already exist" in result.stderr and "models/tiny" in result.stderr
    assert weights.read_bytes() == before


def test_rerun_of_a_finished_run_keeps_the_bundle_and_rewrites_the_tables(trained, train_cohort):
    weights = trained / "models" / "tiny" / "connector.safetensors"
    before = weights.read_bytes(), (trained / "desc-tiny_evaluation.tsv").read_text()
    same = write_train_config(trained.parent / "same.toml", name="tiny", baselines=BASELINES)
    result = run_rgenima(*train_args(train_cohort, trained, same, "-v"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "kept, not retrained" in result.stderr
    assert (weights.read_bytes(), (trained / "desc-tiny_evaluation.tsv").read_text()) == before


def _cohort_with(train_cohort: Path, tmp_path: Path, diagnoses: dict[str, str] | None = None,
                 keep: int | None = None) -> Path:
    """A copy of the cohort's BIDS folder with participants.tsv edited."""
    bids = tmp_path / "bids"
    shutil.copytree(train_cohort / "bids", bids)
    table = pd.read_csv(bids / "participants.tsv", sep="\t", dtype=str, keep_default_na=False)
    if diagnoses is not None:
        table["diagnosis"] = table["participant_id"].map(diagnoses).fillna(table["diagnosis"])
    table.to_csv(bids / "participants.tsv", sep="\t", index=False)
    return bids


@pytest.mark.parametrize("case, code, words", [
    ("one_stage", 1, ["all 24 labelled participants are NC", "at least 2 stages"]),
    ("unlabelled", 66, ["no selected participant has a diagnosis"]),
    ("unknown_label", 2, ["diagnoses rgenima does not know", "Alzheimer"]),
    ("too_few_for_folds", 1, ["too few participants per stage", "5-fold"]),
])
def test_bad_labels_are_refused_clearly(train_cohort, tmp_path, case, code, words):
    truth = pd.read_csv(train_cohort / "bids" / "participants.tsv", sep="\t")
    ids = list(truth["participant_id"])
    edits = {"one_stage": {p: "NC" for p in ids}, "unlabelled": {p: "n/a" for p in ids},
             "unknown_label": {ids[0]: "Alzheimer"}, "too_few_for_folds": {}}[case]
    bids = _cohort_with(train_cohort, tmp_path, edits)
    folds = 5 if case == "too_few_for_folds" else 0
    config = write_train_config(tmp_path / "train.toml", folds=folds)
    if case == "too_few_for_folds":  # leave SMC with 3 participants
        table = pd.read_csv(bids / "participants.tsv", sep="\t")
        smc = table.index[table["diagnosis"] == "SMC"][3:]
        table.loc[smc, "diagnosis"] = "MCI"
        table.to_csv(bids / "participants.tsv", sep="\t", index=False)
    args = train_args(train_cohort, tmp_path / "out", config)
    args[0] = bids
    result = run_rgenima(*args)
    assert result.returncode == code, result.stderr[-2000:]
    for word in words:
        assert word in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out" / "models").exists()


def _progress(work: Path) -> dict | None:
    for path in work.glob("training/*/stage2/checkpoint/progress.json"):
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None
    return None


@pytest.fixture(scope="module")
def uninterrupted(train_cohort, tmp_path_factory):
    """The reference: the resume test's training run, never interrupted."""
    root = tmp_path_factory.mktemp("uninterrupted")
    config = write_train_config(root / "train.toml", name="resume", epochs=6)
    result = run_rgenima(*train_args(train_cohort, root / "out", config))
    assert result.returncode == 0, result.stderr[-3000:]
    return config, root / "out"


def _assert_same_training_outputs(out: Path, reference: Path) -> None:
    """Split identical; test predictions, metrics and bundle weights equal to float tolerance."""
    assert (out / "desc-resume_split.tsv").read_bytes() == (reference / "desc-resume_split.tsv").read_bytes()
    for name in ("desc-resume_testpredictions.tsv", "desc-resume_evaluation.tsv"):
        a, b = (pd.read_csv(folder / name, sep="\t") for folder in (out, reference))
        assert list(a.columns) == list(b.columns) and len(a) == len(b), name
        numeric = a.select_dtypes("number").columns
        pd.testing.assert_frame_equal(a.drop(columns=numeric), b.drop(columns=numeric))
        np.testing.assert_allclose(a[numeric], b[numeric], atol=1e-5, err_msg=name)
    files = sorted(p.relative_to(reference / "models" / "resume")
                   for p in (reference / "models" / "resume").rglob("*.safetensors"))
    assert files and files == sorted(p.relative_to(out / "models" / "resume")
                                     for p in (out / "models" / "resume").rglob("*.safetensors"))
    from safetensors.numpy import load_file

    for rel in files:
        a, b = load_file(out / "models" / "resume" / rel), load_file(reference / "models" / "resume" / rel)
        assert a.keys() == b.keys(), rel
        for key in a:
            np.testing.assert_allclose(a[key], b[key], atol=1e-5, err_msg=f"{rel}: {key}")
    assert [p for p in out.rglob(".*") if p.is_file() and p.name != ".bidsignore" and ".work" not in p.parts] == []


@pytest.mark.parametrize("point", ["stage2 checkpoint", "split write", "evaluation write"])
def test_killed_training_resumes_and_matches_an_uninterrupted_run(train_cohort, uninterrupted, tmp_path, point):
    """SIGKILL at three points: after stage-2 step 3 (its checkpoint), in the middle of writing the split
    table (before training) and of the evaluation table (after the bundle); the same command then
    finishes with the outputs of an uninterrupted run, and no temporary file of the killed write is left."""
    config, reference = uninterrupted
    out = tmp_path / "interrupted"
    command = [*rgenima_command(), *map(str, train_args(train_cohort, out, config))]
    if point == "stage2 checkpoint":
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        while process.poll() is None:
            progress = _progress(out / ".work")
            if progress and progress["step"] >= 3:
                os.killpg(process.pid, signal.SIGKILL)
                break
            time.sleep(0.02)
        code = process.wait()
    else:
        target = {"split write": "desc-resume_split.tsv", "evaluation write": "desc-resume_evaluation.tsv"}[point]
        code = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, **kill_on_replace_env(tmp_path, target)}).returncode
        assert [p.name.split("-", 3)[-1] for p in out.rglob(".tmp-*")] == [target]  # killed mid-write
        assert not (out / target).exists()
    assert code == -signal.SIGKILL, "the run ended before it could be interrupted"
    assert (out / "models" / "resume").exists() == (point == "evaluation write")  # nothing looks finished early
    resumed = run_rgenima(*train_args(train_cohort, out, config, "-v"))  # checks every file against the spec
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    expected = {"stage2 checkpoint": "resuming from", "split write": "stage 2 epoch 1",
                "evaluation write": "kept, not retrained"}[point]
    assert expected in resumed.stderr
    if point != "stage2 checkpoint":
        assert "removed 1 temporary file(s) that killed runs left" in resumed.stderr
    _assert_same_training_outputs(out, reference)


def test_kfold_lora_mixture(train_cohort, tmp_path):
    config = write_train_config(tmp_path / "train.toml", name="kf", data="mixture", folds=2, epochs=1)
    result = run_rgenima(*train_args(train_cohort, tmp_path / "out", config, "--finetune", "lora"))
    assert result.returncode == 0, result.stderr[-3000:]
    split = pd.read_csv(tmp_path / "out" / "desc-kf_split.tsv", sep="\t")
    tested = split[split["role"] == "test"].groupby("participant_id")["fold"].count()
    assert len(tested) == split["participant_id"].nunique() and (tested == 1).all()  # each tested exactly once
    evaluation = pd.read_csv(tmp_path / "out" / "desc-kf_evaluation.tsv", sep="\t")
    assert {"0", "1", "mean"} == set(evaluation["fold"].astype(str))
    for k in (1, 2):
        bundle = tmp_path / "out" / "models" / f"kffold{k}"
        assert (bundle / "llm_adapter").is_dir()
        assert json.loads((bundle / "rgenima.json").read_text())["finetune"] == "lora"


def test_deepspeed_zero3_two_processes_on_cpu(train_cohort, tmp_path):
    pytest.importorskip("deepspeed")
    config = write_train_config(tmp_path / "train.toml", name="ds")
    out = tmp_path / "out"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29547",
               "-m", "rgenima_app", *map(str, train_args(train_cohort, out, config, "--deepspeed", "zero3"))]
    result = subprocess.run(command, capture_output=True, text=True, timeout=1800,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-4000:]
    logs = "".join(p.read_text() for p in (out / "logs").glob("*.log"))
    assert logs.count("stage 2 epoch 2") == 2  # both ranks trained
    predictions = pd.read_csv(out / "desc-ds_testpredictions.tsv", sep="\t")
    predictions = predictions[predictions["model"] == "ds"]  # the classical reference's rows follow
    proba = bundle_test_probabilities(out / "models" / "ds", train_cohort, out / ".work",
                                      list(predictions["participant_id"]))
    np.testing.assert_allclose(proba, predictions[[f"p_{s}" for s in STAGES]].to_numpy(), atol=1e-5)
