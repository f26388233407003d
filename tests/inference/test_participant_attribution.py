"""``participant --model --attribution METHOD`` end to end through the console script, on the tiny synthetic cohort
and a tiny untrained bundle that stores the training mean RiT tokens: every method's outputs, what their sidecars,
the report and the run's log say, the refusal to replace another method's outputs silently, the group level's
refusal of a cohort that mixes methods, and the usage errors of the options. Plus the bundle's reference tokens
(stored, used by integrated gradients, absent from older bundles)."""
from __future__ import annotations

import json
import re
import tomllib

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import run_rgenima
from inference_helpers import genome_text, image_sample, tiny_model
from rgenima_app import STAGES
from rgenima_app.bids.spec import check_outputs
from rgenima_app.genetics.extract import select_panel_snps
from rgenima_app.genetics.panel import gene_panel
from rgenima_app.imaging.roi_table import N_ROIS
from rgenima_app.inference.attribution import integrated_gradients
from rgenima_app.inference.methods import DEFAULT_METHOD, REFERENCE_MEAN, REFERENCE_ZERO, AttributionSettings
from rgenima_app.inference.predict import attribute_samples, attribution_settings
from rgenima_app.models.bundle import REFERENCE_TOKENS, load_bundle, save_bundle, training_summary

MODEL = "attr"
LABELS = ["004", "005", "006"]
STEPS = 4


@pytest.fixture(scope="module")
def reference():
    return 0.5 * torch.randn(N_ROIS, 32, generator=torch.Generator().manual_seed(5))


@pytest.fixture(scope="module")
def bundle(tiny_cohort, tiny_tokenizer, reference, tmp_path_factory):
    panel, _ = select_panel_snps(tiny_cohort / "genotypes" / "cohort.bed", gene_panel(None, "GRCh37"))
    model = tiny_model(tiny_tokenizer, seed=3)
    return save_bundle(tmp_path_factory.mktemp("models") / "attr-model", model, genome_build="GRCh37",
                       snp_text_format="compact", training=training_summary(["sub-001"], data="image_gene"),
                       snp_panel=panel, name=MODEL, reference_tokens=reference, reference_samples=9)


def participant(tiny_cohort, bundle, root, out, *extra):
    return run_rgenima(tiny_cohort / "bids", out, "participant", "--model", bundle, "--participant-label", *LABELS,
                       "--genotypes", tiny_cohort / "genotypes" / "cohort.bed", "--fs-subjects-dir",
                       tiny_cohort / "freesurfer", "--roi-size", "8", "--skip-bids-validation", "-w", root / "work",
                       *extra)


@pytest.fixture(scope="module")
def runs(tiny_cohort, bundle, tmp_path_factory):
    """One output dataset per method (rollout, attention_gradient by default, integrated_gradients with few
    steps), the same participants, one work dir (the ROI patches are extracted once)."""
    root = tmp_path_factory.mktemp("attribution")
    results = {}
    for method, extra in (("rollout", ("--attribution", "rollout")), ("attention_gradient", ()),
                          ("integrated_gradients", ("--attribution", "integrated_gradients",
                                                    "--attribution-steps", str(STEPS)))):
        out = root / method
        results[method] = (out, participant(tiny_cohort, bundle, root, out, *extra))
    return root, results


def tables(out, label):
    stem = out / f"sub-{label}" / f"sub-{label}_desc-{MODEL}"
    return {kind: stem.with_name(f"{stem.name}_{kind}.tsv")
            for kind in ("predictions", "roiattention", "geneattention", "roigeneattention")}


def sidecar(path):
    return json.loads(path.with_name(path.name.replace(".nii.gz", ".json").replace(".tsv", ".json")).read_text())


@pytest.mark.parametrize("method", ["attention_gradient", "integrated_gradients"])
def test_gradient_methods_write_complete_outputs_that_name_the_method(runs, method):
    _, results = runs
    out, result = results[method]
    assert result.returncode == 0, result.stderr
    assert check_outputs(out) == []          # every file and sidecar key as bids_spec/derivatives.yaml says
    rollout_out = results["rollout"][0]
    for label in LABELS:
        paths = tables(out, label)
        rois = pd.read_csv(paths["roiattention"], sep="\t")
        rollout_rois = pd.read_csv(tables(rollout_out, label)["roiattention"], sep="\t")
        assert abs(rois["importance"].sum() - 1) < 1e-6 and (rois["importance"] >= 0).all()
        # another method, another ranking of the same participant's ROIs
        assert np.abs(rois["importance"] - rollout_rois["importance"]).max() > 1e-3
        genes = pd.read_csv(paths["geneattention"], sep="\t")
        assert len(genes) > 0 and abs(genes["importance"].sum() - 1) < 1e-6  # gradient gene importance: sum 1
        assert not pd.read_csv(paths["roigeneattention"], sep="\t").empty
        for kind in ("roiattention", "geneattention", "roigeneattention"):
            recorded = sidecar(paths[kind])
            assert recorded["AttributionMethod"] == method and recorded["AttributionMeaning"]
            assert method.split("_")[0] in recorded["Definition"].lower()
            assert "rownorm(0.5*A_l" not in recorded["Definition"]        # not rollout's definition
        column = sidecar(paths["roiattention"])["importance"]["Description"]
        assert ("attention x gradient" if method == "attention_gradient" else "integrated gradients") in column
        for space in ("space-T1w", "space-T1w_res-conformed"):
            statmap = out / f"sub-{label}" / "anat" / f"sub-{label}_{space}_desc-{MODEL}_stat-attention_statmap.json"
            assert json.loads(statmap.read_text())["AttributionMethod"] == method
        # the prediction itself does not depend on the attribution: same probabilities as rollout's run
        p = pd.read_csv(paths["predictions"], sep="\t")[[f"p_{s}" for s in STAGES]].to_numpy()
        p_rollout = pd.read_csv(tables(rollout_out, label)["predictions"], sep="\t")[[f"p_{s}" for s in STAGES]]
        np.testing.assert_allclose(p, p_rollout.to_numpy(), atol=1e-5)
    parameters = sidecar(tables(out, LABELS[0])["roiattention"])["AttributionParameters"]
    if method == "integrated_gradients":
        assert parameters["Steps"] == STEPS and parameters["Reference"] == REFERENCE_MEAN
        assert "mean RiT token" in parameters["ReferenceDescription"]
        assert f"{STEPS} forward and backward passes per sample" in result.stderr   # said: slower than rollout
    else:
        assert parameters == {"Read": "answers"} and "slower" in result.stderr


def test_the_method_is_in_the_report_and_the_run_log(runs):
    _, results = runs
    for method, (out, result) in results.items():
        text = (out / f"sub-{LABELS[0]}.html").read_text()
        assert f"Attribution shown: {method}" in text
        assert f"--attribution {method}" in text          # the methods section names the option's value
        first = sorted((out / "logs").glob("rgenima-participant-*.toml"))[0]   # this fixture's run
        assert tomllib.loads(first.read_text())["options"]["attribution"] == method
        assert f"attribution: {method}" in first.with_suffix(".log").read_text()
    ig = (results["integrated_gradients"][0] / f"sub-{LABELS[0]}.html").read_text()
    assert f"{STEPS} steps" in ig and "Sundararajan" in ig
    rollout = (results["rollout"][0] / f"sub-{LABELS[0]}.html").read_text()
    assert "Attribution shown: rollout" in rollout and "Sundararajan" not in rollout
    # the most faithful method of the interpretability benchmark (docs/benchmarks.md); the paper's is rollout
    assert DEFAULT_METHOD == "attention_gradient"


def test_another_method_over_existing_outputs_is_refused_then_replaced_with_overwrite(runs, tiny_cohort, bundle):
    root, results = runs
    out = results["rollout"][0]
    before = tables(out, LABELS[0])["roiattention"].read_text()
    refused = participant(tiny_cohort, bundle, root, out, "--attribution", "attention_gradient")
    assert refused.returncode == 73, refused.stderr
    assert "attention outputs made with --attribution rollout; this run writes --attribution attention_gradient" \
        in refused.stderr
    assert "--overwrite" in refused.stderr and "--attribution rollout to keep them" in refused.stderr
    assert tables(out, LABELS[0])["roiattention"].read_text() == before
    # the same method again: complete, skipped
    again = participant(tiny_cohort, bundle, root, out, "--attribution", "rollout", "-v")
    assert again.returncode == 0, again.stderr
    assert all(f"sub-{label}: outputs complete, skipped" in again.stderr for label in LABELS)
    # one participant replaced with --overwrite: its outputs now say attention_gradient; the group level refuses
    # the mix, naming the files and the rerun that fixes it
    replaced = run_rgenima(tiny_cohort / "bids", out, "participant", "--model", bundle, "--participant-label",
                           LABELS[0], "--genotypes", tiny_cohort / "genotypes" / "cohort.bed", "--fs-subjects-dir",
                           tiny_cohort / "freesurfer", "--roi-size", "8", "--skip-bids-validation", "-w", root / "work",
                           "--attribution", "attention_gradient", "--overwrite")
    assert replaced.returncode == 0, replaced.stderr
    assert sidecar(tables(out, LABELS[0])["roiattention"])["AttributionMethod"] == "attention_gradient"
    assert sidecar(tables(out, LABELS[1])["roiattention"])["AttributionMethod"] == "rollout"
    group = run_rgenima(tiny_cohort / "bids", out, "group", "--model", bundle)
    assert group.returncode == 2, group.stderr
    assert "2 different attribution methods" in group.stderr
    assert f"attention_gradient (1 sample(s)): sub-{LABELS[0]}/sub-{LABELS[0]}_desc-{MODEL}_roiattention.json" \
        in group.stderr
    assert f"--attribution rollout --overwrite --participant-label {LABELS[0]}" in group.stderr
    assert "Traceback" not in group.stderr


def test_the_refusal_names_each_sample_s_method_and_outputs_that_record_none(runs, tiny_cohort, bundle, tmp_path):
    import shutil

    root, results = runs
    out = tmp_path / "out"
    shutil.copytree(results["attention_gradient"][0], out)
    for path in (out / f"sub-{LABELS[1]}").glob("*attention.json"):   # as rgenima wrote them before the option
        path.write_text(json.dumps({k: v for k, v in json.loads(path.read_text()).items()
                                    if not k.startswith("Attribution")}))
    refused = participant(tiny_cohort, bundle, root, out, "--attribution", "rollout")
    assert refused.returncode == 73, refused.stderr
    assert (f"sub-{LABELS[0]}: sub-{LABELS[0]}/sub-{LABELS[0]}_desc-{MODEL}_predictions.json attention outputs made "
            "with --attribution attention_gradient; this run writes --attribution rollout") in refused.stderr
    assert (f"sub-{LABELS[1]}: sub-{LABELS[1]}/sub-{LABELS[1]}_desc-{MODEL}_predictions.json attention outputs "
            "written before rgenima recorded their attribution method") in refused.stderr
    assert "or rerun with --attribution attention_gradient to keep them" in refused.stderr


@pytest.mark.parametrize("args, message", [
    (("--attribution", "gradcam"), "Invalid value for '--attribution'"),
    (("--attribution", "attention_gradient", "--attribution-steps", "8"),
     "--attribution-steps 8 applies to --attribution integrated_gradients only"),
    (("--attribution", "integrated_gradients", "--attribution-steps", "0"), "Invalid value for '--attribution-steps'"),
])
def test_bad_attribution_options_are_usage_errors(tiny_cohort, bundle, tmp_path, args, message):
    result = run_rgenima(tiny_cohort / "bids", tmp_path / "out", "participant", "--model", bundle,
                         "--skip-bids-validation", *args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    if args[1] == "gradcam":
        assert all(m in result.stderr for m in ("rollout", "attention_gradient", "integrated_gradients"))
    assert not list((tmp_path / "out").glob("sub-*"))


@pytest.mark.parametrize("level, extra, hint", [
    ("group", ("--model",), "AttributionMethod in their sidecars"),
    ("participant", (), "add --model BUNDLE"),
])
def test_attribution_outside_participant_model_is_refused(tiny_cohort, bundle, tmp_path, level, extra, hint):
    args = [*extra, bundle] if extra else []
    result = run_rgenima(tiny_cohort / "bids", tmp_path / "out", level, *args, "--attribution", "attention_gradient",
                         "--skip-bids-validation")
    assert result.returncode == 2, result.stderr
    assert "--attribution attention_gradient applies to the participant level with --model only" in result.stderr
    assert hint in result.stderr


# ------------------------------------------------------------------ the bundle's reference tokens
def test_bundle_stores_the_reference_tokens_and_integrated_gradients_start_from_them(bundle, reference):
    loaded = load_bundle(bundle)
    torch.testing.assert_close(loaded.reference_tokens, reference)
    assert loaded.metadata["reference_tokens"]["n_samples"] == 9
    assert "each ROI's mean RiT token over 9 training samples" in (bundle / "MODEL_CARD.md").read_text()
    settings = attribution_settings(loaded, "integrated_gradients", 6)
    assert settings == AttributionSettings("integrated_gradients", 6, REFERENCE_MEAN)
    sample = image_sample(2, genome_text(n_genes=4, seed=2))
    (found,), (p,) = attribute_samples(loaded, [sample], settings)
    direct = integrated_gradients(loaded.model, sample, reference, steps=6)
    np.testing.assert_allclose(found.roi_importance, direct.roi_importance, rtol=1e-6)
    from_zero = integrated_gradients(loaded.model, sample, None, steps=6)
    assert np.abs(found.roi_importance - from_zero.roi_importance).max() > 1e-4   # the reference matters
    assert abs(p.sum() - 1) < 1e-12 and found.f_reference != from_zero.f_reference


def test_a_bundle_without_reference_tokens_loads_and_starts_from_zero(tiny_tokenizer, tmp_path):
    older = save_bundle(tmp_path / "older", tiny_model(tiny_tokenizer), name="older")   # as before the change
    assert not (older / REFERENCE_TOKENS).exists() and "reference_tokens" not in json.loads(
        (older / "rgenima.json").read_text())
    loaded = load_bundle(older)
    assert loaded.reference_tokens is None
    settings = attribution_settings(loaded, "integrated_gradients")
    assert settings.reference == REFERENCE_ZERO and settings.steps == 16
    assert "zero image features" in settings.parameters()["ReferenceDescription"]
    assert attribution_settings(loaded, "rollout") == AttributionSettings("rollout")


def test_a_damaged_reference_file_is_refused(bundle, tmp_path):
    import shutil

    from rgenima_app.errors import MissingInputError
    from safetensors.torch import save_file

    copy = tmp_path / "damaged"
    shutil.copytree(bundle, copy)
    save_file({"tokens": torch.zeros(3, 4)}, str(copy / REFERENCE_TOKENS))
    with pytest.raises(MissingInputError, match=re.escape("holds tokens of shape (3, 4)")):
        load_bundle(copy).reference_tokens
    (copy / REFERENCE_TOKENS).unlink()
    with pytest.raises(MissingInputError, match="rgenima.json lists it"):
        load_bundle(copy).reference_tokens
