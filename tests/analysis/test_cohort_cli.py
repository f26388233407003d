"""``rgenima BIDS OUT group --model BUNDLE`` end to end through the console script.

Participant outputs are written directly (in the participant level's formats) for 30 fabricated
participants with planted stage ROIs; the bundle is a real, tiny, untrained one whose hashed training
participants mark half of the cohort as training data.
"""
from __future__ import annotations

import functools
import json
import logging
import re
import shutil
import subprocess

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from helpers import requires_validator, run_rgenima

from rgenima_app import STAGES
from rgenima_app.analysis.metrics import classification_metrics
from rgenima_app.bids.derivatives import DerivativesWriter, write_json
from rgenima_app.imaging.roi_table import load_roi_table
from rgenima_app.inference.methods import AttributionSettings
from rgenima_app.inference.outputs import attribution_sidecar
from rgenima_app.synthetic import build_phantom, fabricate_attention

MODEL = "tinycohort"
GENES = ["APOE", "BIN1", "CLU", "PICALM", "CR1", "ABCA7", "SORL1", "TREM2", "CD33", "MS4A6A", "GENEA", "GENEB"]
GROUP_SIZES = {"NC": 8, "SMC": 6, "MCI": 8, "AD": 8}
PLANTED_ROIS = {
    "SMC": ["Left-Thalamus", "ctx-rh-insula", "Left-Caudate"],
    "MCI": ["Left-Thalamus", "ctx-rh-temporalpole", "ctx-rh-frontalpole"],
    "AD": ["Left-Hippocampus", "ctx-lh-entorhinal", "Left-Amygdala"],
}
PLANTED_PAIRS = {"AD": [("Left-Hippocampus", "APOE")], "MCI": [("ctx-rh-temporalpole", "BIN1")]}
ANALYSIS_TOML = "[analysis]\nn_boot = 200\nseed = 3\nroi_top_k = 6\ngene_top = 4\n"
TWO_SESSIONS = "01"          # this participant has outputs of two sessions
LIAR = "04"                  # its outputs say held out, but the bundle's training IDs contain it
NO_IMAGE = "31"              # an AD participant predicted from genotypes only: no ROI attention


def labels() -> list[str]:
    return [f"{i + 1:02d}" for i in range(sum(GROUP_SIZES.values()))]


def save_tiny_bundle(path, trained: list[str], name: str = MODEL):
    import torch

    from rgenima_app.models.bundle import save_bundle, training_summary
    from rgenima_app.models.llm import build_llm
    from rgenima_app.models.mllm import RGenIMA
    from rgenima_app.models.rit import RiT, RiTConfig
    from rgenima_app.models.tiny_llm import TinyLLMConfig

    torch.manual_seed(0)
    llm, tok, desc = build_llm("tiny", tiny=TinyLLMConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                                          num_key_value_heads=1, intermediate_size=64, vocab_size=512))
    rit = RiT(RiTConfig(roi_size=8, dim=16, depth=1, heads=2)).eval()
    model = RGenIMA(llm, tok, image_dim=16, image_encoder=rit, llm_description=desc)
    return save_bundle(path, model, training=training_summary(trained, epochs=0), name=name)


def dseg_image() -> nib.Nifti1Image:
    phantom = build_phantom(40, 5.0)
    table = load_roi_table()
    lut = np.zeros(int(table["label"].max()) + 1, dtype=np.int16)
    lut[table["label"].to_numpy()] = table["index"].to_numpy()
    return nib.Nifti1Image(lut[phantom.labels], phantom.affine)


def _write_with_sidecar(writer, sidecar, path, table):
    return writer.write_tsv(path, table, sidecar)


def write_participant(out, label, session, roi, pairs, genes, proba, held_out, model_hash="hash-a", model=MODEL):
    """The participant level's files for one participant/session (docs/outputs.md, "Layout"; formats fixed)."""
    name = f"sub-{label}" + (f"_ses-{session}" if session else "")
    folder = out / f"sub-{label}" / (f"ses-{session}" if session else "")
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"{name}_desc-{model}"
    table = pd.DataFrame([{"participant_id": f"sub-{label}", **({"session_id": f"ses-{session}"} if session else {}),
                           "label": STAGES[int(np.argmax(proba))], **{f"p_{s}": p for s, p in zip(STAGES, proba)},
                           "ood_score": "n/a", "ood_flag": "n/a"}])
    writer = DerivativesWriter(out)  # sidecars as the participant level writes them (checked by the group run)
    writer.write_tsv(stem.with_name(stem.name + "_predictions.tsv"), table,
                     {"Description": "fabricated", "Model": model, "ModelHash": model_hash, "HeldOut": held_out,
                      "ImputedSNPs": 0, "Modalities": ["T1w", "genotype"], "Sources": [],
                      "OutOfDistribution": {"Available": False}})
    rollout = {"Description": "fabricated", "Sources": [], **attribution_sidecar(AttributionSettings("rollout"))}
    write_tsv = functools.partial(_write_with_sidecar, writer, rollout)
    rois = load_roi_table()
    write_tsv(stem.with_name(stem.name + "_roiattention.tsv"),
              pd.DataFrame({"index": rois["index"], "roi": rois["name"], "importance": roi}))
    write_tsv(stem.with_name(stem.name + "_geneattention.tsv"), pd.DataFrame({"gene": GENES, "importance": genes}))
    if pairs is None:  # no image: an empty ROI-gene table, as the participant level writes it
        pairs_table = pd.DataFrame(columns=["roi", "gene", "attention"])
    else:
        r, g = np.meshgrid(np.arange(len(rois)), np.arange(len(GENES)), indexing="ij")
        pairs_table = pd.DataFrame({"roi": rois["name"].to_numpy()[r.ravel()], "gene": np.asarray(GENES)[g.ravel()],
                                    "attention": pairs.ravel()})
    write_tsv(stem.with_name(stem.name + "_roigeneattention.tsv"), pairs_table)


def build_cohort(root, diagnoses_override: dict | None = None):
    """BIDS dir (participants.tsv) + output dir with every participant's outputs; returns (bids, out, truth)."""
    cohort = fabricate_attention(GROUP_SIZES, GENES, PLANTED_ROIS, ["APOE", "CLU"], PLANTED_PAIRS,
                                 effect=2.0, seed=4)
    ids = labels()
    rng = np.random.default_rng(0)
    bids, out = root / "bids", root / "out"
    bids.mkdir(parents=True)
    (bids / "dataset_description.json").write_text(json.dumps({"Name": "cohort", "BIDSVersion": "1.10.0"}))
    spelled = {"NC": "CN", "SMC": "SMC", "MCI": "EMCI", "AD": "Dementia"}  # ADNI spellings, mapped
    diagnosis = {p: spelled[g] for p, g in zip(ids, cohort.groups)}
    diagnosis[NO_IMAGE] = "AD"
    diagnosis.update(diagnoses_override or {})
    pd.DataFrame({"participant_id": [f"sub-{p}" for p in diagnosis], "diagnosis": list(diagnosis.values())}).to_csv(
        bids / "participants.tsv", sep="\t", index=False)
    DerivativesWriter(out, bids).initialize(load_roi_table())
    truth = {}
    for k, (p, group) in enumerate(zip(ids, cohort.groups)):
        trained = k % 2 == 1
        logits = rng.normal(0, 1, 4)
        logits[STAGES.index(group)] += 4.0 if trained else 1.2   # held-out predictions make mistakes
        proba = np.exp(logits) / np.exp(logits).sum()
        held_out = (not trained) or p == LIAR
        for session in (["1", "2"] if p == TWO_SESSIONS else [None]):
            write_participant(out, p, session, cohort.roi_importance[k], cohort.roi_gene[k],
                              cohort.gene_importance[k], proba, held_out)
            truth[(f"sub-{p}", session)] = (group, proba, trained)
    proba = np.array([0.1, 0.1, 0.5, 0.3])  # wrong: MCI
    write_participant(out, NO_IMAGE, None, np.full(len(load_roi_table()), np.nan), None,
                      cohort.gene_importance[-1], proba, True)
    truth[(f"sub-{NO_IMAGE}", None)] = ("AD", proba, False)
    writer = DerivativesWriter(out, bids)
    dseg = writer.path("02", None, datatype="anat", desc="rois", suffix="dseg", extension=".nii.gz")
    writer.write_nifti(dseg, dseg_image(), sidecar={"Description": "test ROI map", "Sources": []})
    return bids, out, truth


@pytest.fixture(scope="module")
def trained_ids():
    return [p for k, p in enumerate(labels()) if k % 2 == 1]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, trained_ids):
    return save_tiny_bundle(tmp_path_factory.mktemp("models") / "tinycohort", trained_ids + [LIAR])


@pytest.fixture(scope="module")
def group_run(tmp_path_factory, bundle):
    root = tmp_path_factory.mktemp("cohort")
    bids, out, truth = build_cohort(root)
    config = root / "analysis.toml"
    config.write_text(ANALYSIS_TOML)
    result = run_rgenima(bids, out, "group", "--model", bundle, "--train-config", config)
    return bids, out, truth, result


def test_group_run_succeeds_and_writes_every_table(group_run):
    _, out, _, result = group_run
    assert result.returncode == 0, result.stderr
    assert "lack ROI or ROI-gene attention" in result.stderr and f"sub-{NO_IMAGE}" in result.stderr
    assert f"sub-{LIAR}" in result.stderr  # claimed held out, but in the bundle's training participants
    for suffix in ("predictions", "metrics", "roistability", "roigenestability", "generanking", "geneenrichment"):
        assert (out / f"desc-{MODEL}_{suffix}.tsv").is_file(), suffix
        assert (out / f"desc-{MODEL}_{suffix}.json").is_file(), suffix
    html = (out / "group.html").read_text()
    assert MODEL in html and "sub-02" in html  # the representative participant's ROI map is named
    assert "data:image/png;base64" in html     # brain slices drawn from its dseg
    assert not list(out.glob(".*.tmp*"))


def test_group_report_has_roc_calibration_and_the_run_that_made_it(group_run, bundle):
    import html
    import shlex
    import tomllib

    from sklearn.metrics import roc_auc_score

    bids, out, _, _ = group_run
    text = (out / "group.html").read_text()
    command = shlex.join(["rgenima", str(bids), str(out), "group", "--model", str(bundle), "--train-config",
                          str(out.parent / "analysis.toml")])
    assert f'<pre class="command">{html.escape(command)}</pre>' in text       # as typed, passed through
    logged = [tomllib.loads(p.read_text()) for p in (out / "logs").glob("rgenima-group-*.toml")]
    assert [doc["options"]["command_line"] for doc in logged] == [command]    # and recorded with the run
    sidecar = json.loads((out / f"desc-{MODEL}_predictions.json").read_text())
    assert sidecar["Provenance"]["CommandLine"] == command
    assert f"<td>BIDS dataset</td><td><code>{bids}</code>" in text
    assert sidecar["ModelHash"] and f"<code>{sidecar['ModelHash']}</code>" in text
    assert "numpy" in text and "nibabel" in text
    table = pd.read_csv(out / f"desc-{MODEL}_predictions.tsv", sep="\t", na_values="n/a", keep_default_na=False)
    held = table[(table["held_out"] == True) & table["diagnosis"].notna()]   # noqa: E712 (a boolean column)
    assert 'id="roc-calibration"' in text
    for stage in STAGES:
        auc = roc_auc_score(held["diagnosis"] == stage, held[f"p_{stage}"])
        assert f"{stage} vs rest: AUC {auc:.3f}" in text


def test_cohort_predictions_join_truth_and_held_out(group_run, trained_ids):
    _, out, truth, _ = group_run
    table = pd.read_csv(out / f"desc-{MODEL}_predictions.tsv", sep="\t", na_values="n/a", keep_default_na=False)
    assert list(table.columns) == ["participant_id", "session", "diagnosis", "label",
                                   "p_NC", "p_SMC", "p_MCI", "p_AD", "held_out"]
    assert len(table) == len(truth) == 32
    assert (table["participant_id"] == f"sub-{TWO_SESSIONS}").sum() == 2
    for row in table.itertuples():
        session = None if pd.isna(row.session) else str(int(row.session))
        group, proba, trained = truth[(row.participant_id, session)]
        assert row.diagnosis == group                            # CN/EMCI/Dementia mapped
        assert row.held_out == (not trained and row.participant_id != f"sub-{LIAR}")
        assert row.label == STAGES[int(np.argmax(proba))]
    assert not table.loc[table["participant_id"] == f"sub-{LIAR}", "held_out"].any()
    sidecar = json.loads((out / f"desc-{MODEL}_predictions.json").read_text())
    assert sidecar["ModelHash"] == "hash-a" and "held_out" in sidecar


def test_metrics_use_held_out_participants_only(group_run):
    _, out, truth, _ = group_run
    held = [(pid, s) for (pid, s), (g, p, trained) in truth.items() if not trained and pid != f"sub-{LIAR}"]
    expected = classification_metrics([truth[k][0] for k in held], np.array([truth[k][1] for k in held]),
                                      n_boot=200, seed=3, groups=[k[0] for k in held])
    metrics = pd.read_csv(out / f"desc-{MODEL}_metrics.tsv", sep="\t", na_values="n/a", keep_default_na=False)
    assert list(metrics.columns) == ["metric", "value", "ci_low", "ci_high"]
    np.testing.assert_allclose(metrics["value"], expected.table["value"], equal_nan=True)
    np.testing.assert_allclose(metrics["ci_low"], expected.table["ci_low"], equal_nan=True)
    sidecar = json.loads((out / f"desc-{MODEL}_metrics.json").read_text())
    assert sidecar["NSamples"] == len(held) == 17           # sub-01 has two sessions
    assert sidecar["NParticipants"] == 16
    assert f"sub-{LIAR}" not in sidecar["Participants"]
    assert np.sum(sidecar["ConfusionMatrix"]["Counts"]) == 17
    # training participants are predicted almost perfectly: including them would raise accuracy
    all_rows = list(truth)
    everyone = classification_metrics([truth[k][0] for k in all_rows], np.array([truth[k][1] for k in all_rows]),
                                      n_boot=0)
    assert everyone.value("accuracy") > expected.value("accuracy")


def test_planted_rois_are_stage_specific(group_run):
    _, out, _, _ = group_run
    table = pd.read_csv(out / f"desc-{MODEL}_roistability.tsv", sep="\t", na_values="n/a", keep_default_na=False)
    assert set(table["group"]) == set(STAGES)
    specific = table[table["stage_specific"]]
    for stage, rois in PLANTED_ROIS.items():
        chosen = set(specific.loc[specific["group"] == stage, "roi"])
        assert set(rois) <= chosen, (stage, chosen)
        assert len(chosen) <= 6
    assert table.loc[table["group"] == "NC", "stage_specific"].sum() < 3  # no planted signal in NC
    assert table.loc[table["group"] == "AD", "n"].iloc[0] == 8             # sub-31 (no image) left out
    ranking = pd.read_csv(out / f"desc-{MODEL}_generanking.tsv", sep="\t", na_values="n/a", keep_default_na=False)
    top = ranking[ranking["group"] == "all"].sort_values("rank")["gene"].head(2)
    assert set(top) == {"APOE", "CLU"}                                      # planted genes (gene importance)
    pairs = pd.read_csv(out / f"desc-{MODEL}_roigenestability.tsv", sep="\t", na_values="n/a", keep_default_na=False)
    ad = pairs[(pairs["group"] == "AD") & (pairs["roi"] == "Left-Hippocampus")].sort_values("mean", ascending=False)
    assert ad["gene"].iloc[0] == "APOE"
    settings = json.loads((out / f"desc-{MODEL}_roistability.json").read_text())["Settings"]
    assert settings["n_boot"] == 200 and settings["seed"] == 3 and settings["roi_top_k"] == 6


@requires_validator
def test_output_validates(group_run):
    _, out, _, _ = group_run
    report = json.loads(subprocess.run(["bids-validator-deno", "--format", "json", str(out)],
                                       capture_output=True, text=True).stdout)
    errors = [i for i in report["issues"]["issues"] if i["severity"] == "error"]
    assert errors == []


def test_reports_only_rerenders_from_tables(group_run, bundle, tmp_path):
    bids, out, _, _ = group_run
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    (copy / "group.html").unlink()
    before = {p.name: p.stat().st_mtime_ns for p in copy.glob(f"desc-{MODEL}_*")}
    result = run_rgenima(bids, copy, "group", "--model", bundle, "--reports-only")
    assert result.returncode == 0, result.stderr
    html = (copy / "group.html").read_text()
    original = (out / "group.html").read_text()
    for text in ("Left-Hippocampus", "ctx-lh-entorhinal", "accuracy", "sub-02", "vs rest: AUC"):
        assert text in html and text in original
    # the analysis's command line is kept, and the one that re-rendered the page is named beside it
    original_command = re.search(r'<pre class="command">(.*?)</pre>', original).group(1)
    assert f'<pre class="command">{original_command}</pre>' in html and "--reports-only</pre>" in html
    assert {p.name: p.stat().st_mtime_ns for p in copy.glob(f"desc-{MODEL}_*")} == before  # tables untouched


def test_reports_only_without_tables_is_a_clear_error(bundle, tmp_path):
    bids, out, _ = build_cohort(tmp_path)
    result = run_rgenima(bids, out, "group", "--model", bundle, "--reports-only")
    assert result.returncode == 66
    assert f"desc-{MODEL}_roistability.tsv" in result.stderr and "without --reports-only" in result.stderr
    assert "Traceback" not in result.stderr


def test_no_outputs_of_the_model_lists_the_models_found(group_run, trained_ids, tmp_path):
    bids, out, _, _ = group_run
    other = save_tiny_bundle(tmp_path / "othermodel", trained_ids, name="othermodel")
    result = run_rgenima(bids, out, "group", "--model", other)
    assert result.returncode == 18
    assert "othermodel" in result.stderr and MODEL in result.stderr
    assert "Traceback" not in result.stderr


def test_outputs_of_two_models_are_refused(group_run, bundle, tmp_path):
    bids, out, _, _ = group_run
    mixed = tmp_path / "out"
    shutil.copytree(out, mixed)
    sidecar = mixed / "sub-07" / f"sub-07_desc-{MODEL}_predictions.json"
    write_json(sidecar, dict(json.loads(sidecar.read_text()), ModelHash="hash-b"))
    result = run_rgenima(bids, mixed, "group", "--model", bundle)
    assert result.returncode == 1
    assert "2 different models" in result.stderr and "sub-07" in result.stderr
    assert "Traceback" not in result.stderr


def _set_attribution(out, label, method: str) -> None:
    """Mark one participant's attention outputs as made by ``method`` (as ``participant --attribution`` would)."""
    for kind in ("roiattention", "geneattention", "roigeneattention"):
        sidecar = out / f"sub-{label}" / f"sub-{label}_desc-{MODEL}_{kind}.json"
        write_json(sidecar, dict(json.loads(sidecar.read_text()),
                                 **attribution_sidecar(AttributionSettings.of(method, 8))))


def test_outputs_of_two_attribution_methods_are_refused(group_run, bundle, tmp_path):
    bids, out, _, _ = group_run
    mixed = tmp_path / "out"
    shutil.copytree(out, mixed)
    for label in ("07", "09"):
        _set_attribution(mixed, label, "integrated_gradients")
    result = run_rgenima(bids, mixed, "group", "--model", bundle)
    assert result.returncode == 2, result.stderr   # a usage error, as the app's others
    assert "2 different attribution methods" in result.stderr and "mean nothing" in result.stderr
    assert re.search(r"rollout \(\d+ sample\(s\)\)", result.stderr)
    assert "integrated_gradients (2 sample(s)): sub-07/sub-07_desc-tinycohort_roiattention.json, " \
           "sub-09/sub-09_desc-tinycohort_roiattention.json" in result.stderr
    assert "--attribution rollout --overwrite --participant-label 07 09" in result.stderr   # the fix
    assert "Traceback" not in result.stderr


def test_a_cohort_of_one_other_method_is_analysed_and_says_so(group_run, bundle, tmp_path):
    bids, out, _, _ = group_run
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    sidecars = sorted(copy.glob(f"sub-*/**/*_desc-{MODEL}_*attention.json"))
    assert len(sidecars) == 3 * 32   # 31 participants, one with two sessions
    for path in sidecars:
        write_json(path, dict(json.loads(path.read_text()), **attribution_sidecar(
            AttributionSettings.of("integrated_gradients", 8))))
    config = tmp_path / "analysis.toml"
    config.write_text(ANALYSIS_TOML)
    result = run_rgenima(bids, copy, "group", "--model", bundle, "--train-config", config)
    assert result.returncode == 0, result.stderr
    provenance = json.loads((copy / f"desc-{MODEL}_predictions.json").read_text())["Provenance"]
    assert provenance["Attribution"]["Method"] == "integrated_gradients"
    assert provenance["Attribution"]["Parameters"]["Steps"] == 8
    report = (copy / "group.html").read_text()
    assert "--attribution integrated_gradients</code> (Reference zero, Steps 8)" in report
    assert "not the paper's attention rollout" in report and "attribution method (participant level)" in report


def test_one_attribution_reads_the_method_and_takes_unrecorded_outputs_as_rollout(group_run, tmp_path):
    from rgenima_app.errors import UsageError
    from rgenima_app.workflows.analyse import load_cohort_outputs, one_attribution

    bids, out, _, _ = group_run
    cohort = load_cohort_outputs(out, MODEL)
    assert set(cohort.predictions["attribution"]) == {"rollout"}
    found = one_attribution(cohort.predictions, out, MODEL)
    assert found["Method"] == "rollout" and found["Parameters"] == {}
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    # outputs written before rgenima recorded the method: rollout's, which is what they are
    sidecar = copy / "sub-05" / f"sub-05_desc-{MODEL}_roiattention.json"
    write_json(sidecar, {k: v for k, v in json.loads(sidecar.read_text()).items() if not k.startswith("Attribution")})
    assert set(load_cohort_outputs(copy, MODEL).predictions["attribution"]) == {"rollout"}
    # integrated gradients with two step counts: one method, analysed with a loud warning
    _set_attribution(copy, "05", "integrated_gradients")
    _set_attribution(copy, "06", "integrated_gradients")
    sidecar = copy / "sub-06" / f"sub-06_desc-{MODEL}_roiattention.json"
    recorded = json.loads(sidecar.read_text())
    write_json(sidecar, dict(recorded, AttributionParameters=dict(recorded["AttributionParameters"], Steps=32)))
    predictions = load_cohort_outputs(copy, MODEL).predictions
    with pytest.raises(UsageError, match="2 different attribution methods"):
        one_attribution(predictions, copy, MODEL)
    warnings = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: warnings.append(record.getMessage())
    logging.getLogger("rgenima").addHandler(handler)
    try:
        found = one_attribution(predictions[predictions["attribution"] == "integrated_gradients"], copy, MODEL)
    finally:
        logging.getLogger("rgenima").removeHandler(handler)
    assert found["Method"] == "integrated_gradients" and sorted(p["Steps"] for p in found["Parameters"]) == [8, 32]
    assert any("MIX integrated_gradients SETTINGS" in w and "sub-06" in w for w in warnings), warnings


def test_group_of_one_is_skipped_with_a_warning(bundle, tmp_path):
    smc = [p for p, g in zip(labels(), [g for g, n in GROUP_SIZES.items() for _ in range(n)]) if g == "SMC"]
    bids, out, _ = build_cohort(tmp_path, {p: "n/a" for p in smc[1:]})   # one SMC participant left
    result = run_rgenima(bids, out, "group", "--model", bundle)
    assert result.returncode == 0, result.stderr
    assert "group SMC has 1 participant" in result.stderr
    table = pd.read_csv(out / f"desc-{MODEL}_roistability.tsv", sep="\t")
    assert set(table["group"]) == {"NC", "MCI", "AD"}
    assert (out / "group.html").is_file()


def test_unknown_analysis_key_is_refused(group_run, bundle, tmp_path):
    bids, out, _, _ = group_run
    config = tmp_path / "bad.toml"
    config.write_text("[analysis]\nn_bot = 10\n")
    result = run_rgenima(bids, tmp_path / "out", "group", "--model", bundle, "--train-config", config)
    assert result.returncode == 2
    assert "n_bot" in result.stderr and "n_boot" in result.stderr and str(config) in result.stderr


def _no_diagnoses(root):
    bids, out, _ = build_cohort(root, {p: "n/a" for p in labels() + [NO_IMAGE]})
    return bids, out


def test_unlabelled_cohort_groups_by_predicted_stage_by_default(bundle, tmp_path):
    bids, out = _no_diagnoses(tmp_path)
    result = run_rgenima(bids, out, "group", "--model", bundle)
    assert result.returncode == 0, result.stderr
    assert "groups participants by the model's predicted stage" in result.stderr
    predictions = pd.read_csv(out / f"desc-{MODEL}_predictions.tsv", sep="\t")
    assert predictions["diagnosis"].isna().all()
    stability = pd.read_csv(out / f"desc-{MODEL}_roistability.tsv", sep="\t")
    predicted_groups = predictions.groupby("participant_id")["label"].first().value_counts()
    assert set(stability["group"]) == set(predicted_groups[predicted_groups >= 2].index)
    assert not (out / f"desc-{MODEL}_metrics.tsv").exists()
    assert "groups by predicted" in (out / "group.html").read_text()


def test_group_by_diagnosis_on_an_unlabelled_cohort_names_the_option(bundle, tmp_path):
    bids, out = _no_diagnoses(tmp_path)
    result = run_rgenima(bids, out, "group", "--model", bundle, "--group-by", "diagnosis")
    assert result.returncode == 18, result.stderr
    assert "--group-by predicted" in result.stderr


def test_group_by_option_overrides_the_analysis_table(group_run, bundle, tmp_path):
    bids, _, _, _ = group_run
    config = tmp_path / "analysis.toml"
    config.write_text(ANALYSIS_TOML + 'group_by = "diagnosis"\n')
    out = tmp_path / "out"
    shutil.copytree(group_run[1], out)
    result = run_rgenima(bids, out, "group", "--model", bundle, "--train-config", config, "--group-by", "predicted")
    assert result.returncode == 0, result.stderr
    assert "groups by predicted" in (out / "group.html").read_text()
    # the diagnoses still give the held-out metrics
    assert (out / f"desc-{MODEL}_metrics.tsv").is_file()


def test_group_by_outside_the_group_analysis_is_refused(group_run, bundle, tmp_path):
    bids, _, _, _ = group_run
    result = run_rgenima(bids, tmp_path / "out", "participant", "--group-by", "predicted")
    assert result.returncode == 2
    assert "--group-by predicted applies to the group analysis only" in result.stderr
