"""``rgenima BIDS OUT participant --model BUNDLE``: every output, the statmap, validation, the report,
and the bad inputs (other ROI size / labels, a participant without genotypes, one without an image,
one from the training set). The bundle is an untrained tiny model saved with the cohort's SNP panel."""
from __future__ import annotations

import json
import re
import shutil
import subprocess

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from helpers import requires_validator, run_rgenima
from inference_helpers import tiny_model
from rgenima_app import STAGES
from rgenima_app.genetics.extract import select_panel_snps
from rgenima_app.genetics.panel import gene_panel
from rgenima_app.models.bundle import save_bundle, training_summary
from rgenima_app.models.tiny_llm import train_tiny_tokenizer

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
MODEL = "tiny"
TRAINED_ON = ["sub-001", "sub-002"]
NO_GENOTYPES, NO_IMAGE = "003", "012"
METRICS = {"test": {"accuracy": {"value": 0.6125, "ci_low": 0.41, "ci_high": 0.8},
                    "macro_f1": {"value": 0.55, "ci_low": None, "ci_high": None}},
           "n_test_samples": 7, "confusion": {"NC": {"NC": 1}}}


@pytest.fixture(scope="module")
def bundle(tiny_cohort, tmp_path_factory):
    panel, _ = select_panel_snps(tiny_cohort / "genotypes" / "cohort.bed", gene_panel(None, "GRCh37"))
    model = tiny_model(train_tiny_tokenizer(1024, 0))
    # mixture training: validated on image+genes and genes (a participant without an image), not on image
    return save_bundle(tmp_path_factory.mktemp("models") / "tiny-model", model, genome_build="GRCh37",
                       snp_text_format="compact", training=training_summary(TRAINED_ON, data="mixture"),
                       metrics=METRICS, snp_panel=panel, name=MODEL)


@pytest.fixture(scope="module")
def run(tiny_cohort, bundle, tmp_path_factory):
    """One run over the cohort, with one participant not genotyped and one without any image."""
    root = tmp_path_factory.mktemp("predict")
    bids = root / "bids"
    shutil.copytree(tiny_cohort / "bids", bids)
    table = pd.read_csv(bids / "participants.tsv", sep="\t")
    table.loc[table["participant_id"] == f"sub-{NO_GENOTYPES}", "genetic_id"] = "NOT-GENOTYPED"
    table.to_csv(bids / "participants.tsv", sep="\t", index=False)
    shutil.rmtree(bids / f"sub-{NO_IMAGE}")
    out = root / "out"
    result = run_rgenima(bids, out, "participant", "--model", bundle, "--genotypes",
                         tiny_cohort / "genotypes" / "cohort.bed", "--fs-subjects-dir", tiny_cohort / "freesurfer",
                         "--roi-size", "8", "--skip-bids-validation", "-w", root / "work", "--allow-unvalidated-inputs",
                         "--attribution", "rollout")  # the paper's method, whose definition and citation are checked here
    assert result.returncode == 0, result.stderr
    return out, result, sorted(table["participant_id"])


def outputs_of(out, participant):
    stem = out / participant / f"{participant}_desc-{MODEL}"
    return {kind: stem.parent / f"{stem.name}_{kind}.tsv"
            for kind in ("predictions", "roiattention", "geneattention", "roigeneattention")}


def test_every_output_for_every_participant(run):
    out, _, participants = run
    assert len(participants) == 12
    for participant in participants:
        for kind, path in outputs_of(out, participant).items():
            assert path.is_file() and path.with_suffix(".json").is_file(), path
        assert (out / f"{participant}.html").is_file()
        for space in ("space-T1w", "space-T1w_res-conformed"):
            statmap = out / participant / "anat" / f"{participant}_{space}_desc-{MODEL}_stat-attention_statmap.nii.gz"
            assert statmap.is_file() == (participant != f"sub-{NO_IMAGE}")
        predictions = pd.read_csv(outputs_of(out, participant)["predictions"], sep="\t")
        assert list(predictions.columns) == ["participant_id", "label", *[f"p_{s}" for s in STAGES], "modalities",
                                             "inputs_validated", "panel_snps_observed", "panel_snps_total",
                                             "panel_coverage_low", "ood_score", "ood_flag"]
        expected = {f"sub-{NO_GENOTYPES}": "image", f"sub-{NO_IMAGE}": "genes"}.get(participant, "image+genes")
        assert predictions["modalities"].iloc[0] == expected
        assert predictions["inputs_validated"].iloc[0] == (expected != "image")
        # this bundle stores no training distribution (as bundles written before it existed): n/a, and said so
        assert predictions["ood_score"].isna().all() and predictions["ood_flag"].isna().all()
        p = predictions[[f"p_{s}" for s in STAGES]].to_numpy()[0]
        assert abs(p.sum() - 1) < 1e-6 and (p > 0).all()
        assert predictions["label"].iloc[0] == STAGES[int(np.argmax(p))]
        sidecar = json.loads(outputs_of(out, participant)["predictions"].with_suffix(".json").read_text())
        assert {"Sources", "Model", "ModelHash", "ImputedSNPs", "Modalities", "HeldOut"} <= set(sidecar)
        assert sidecar["OutOfDistribution"]["Available"] is False
        assert "stores no training distribution" in sidecar["OutOfDistribution"]["Note"]
        assert sidecar["Model"] == MODEL and re.fullmatch(r"[0-9a-f]{64}", sidecar["ModelHash"])
        assert sidecar["HeldOut"] == (participant not in TRAINED_ON)
        rois = pd.read_csv(outputs_of(out, participant)["roiattention"], sep="\t")
        assert list(rois.columns) == ["index", "roi", "importance"] and list(rois["index"]) == list(range(1, 110))
        if participant != f"sub-{NO_IMAGE}":
            assert abs(rois["importance"].sum() - 1) < 1e-6 and (rois["importance"] > 0).all()
    hashes = {json.loads(outputs_of(out, p)["predictions"].with_suffix(".json").read_text())["ModelHash"]
              for p in participants}
    assert len(hashes) == 1


def test_both_modalities_tables(run, bundle):
    out, _, _ = run
    paths = outputs_of(out, "sub-004")
    sidecar = json.loads(paths["predictions"].with_suffix(".json").read_text())
    assert sidecar["Modalities"] == ["T1w", "genotypes"] and sidecar["ImputedSNPs"] >= 0
    panel = pd.read_csv(bundle / "snp_panel.tsv", sep="\t")
    genes = pd.read_csv(paths["geneattention"], sep="\t")
    assert list(genes["gene"]) == list(pd.unique(panel["gene"])) and (genes["importance"] > 0).all()
    pairs = pd.read_csv(paths["roigeneattention"], sep="\t")
    assert list(pairs.columns) == ["roi", "gene", "attention"] and len(pairs) == 109 * len(genes)
    assert (pairs["attention"] > 0).all()
    genotypes = pd.read_csv(out / "sub-004" / "genotype" / "sub-004_desc-panel_genotypes.tsv", sep="\t")
    assert list(genotypes["snp"]) == list(panel["snp"])  # the model's panel, not the file's own QC
    assert sidecar["ImputedSNPs"] == int(genotypes["imputed"].sum())
    table = pd.read_csv(paths["predictions"], sep="\t")
    assert table["panel_snps_total"].iloc[0] == len(panel) == sidecar["PanelSNPsTotal"]
    assert table["panel_snps_observed"].iloc[0] == len(panel) - sidecar["ImputedSNPs"] == sidecar["PanelSNPsObserved"]
    assert not table["panel_coverage_low"].iloc[0] and sidecar["InputConfiguration"] == "image+genes"
    assert sidecar["ValidatedInputs"] == ["image+genes", "genes"] and sidecar["MinPanelCoverage"] == 0.5
    rollout = json.loads(paths["roigeneattention"].with_suffix(".json").read_text())
    assert "rownorm(0.5*A_l + 0.5*I)" in rollout["Definition"] and rollout["Sources"]


def _statmap(anat, participant, space):
    path = anat / f"{participant}_{space}_desc-{MODEL}_stat-attention_statmap.nii.gz"
    return nib.load(path), json.loads(path.with_name(path.name.replace(".nii.gz", ".json")).read_text())


def test_statmap_on_the_conformed_grid_is_kept_with_its_resolution(run):
    out, _, _ = run
    for participant in ("sub-002", "sub-007"):
        anat = out / participant / "anat"
        dseg = nib.load(anat / f"{participant}_desc-rois_dseg.nii.gz")
        statmap, sidecar = _statmap(anat, participant, "space-T1w_res-conformed")
        assert statmap.shape == dseg.shape and np.allclose(statmap.affine, dseg.affine)
        index, values = np.asarray(dseg.dataobj).astype(int), statmap.get_fdata()
        assert np.all(values[index == 0] == 0) and np.all(values[index > 0] > 0)
        importance = pd.read_csv(outputs_of(out, participant)["roiattention"], sep="\t")["importance"].to_numpy()
        np.testing.assert_allclose(values[index > 0], importance[index[index > 0] - 1], rtol=1e-6)
        assert "Definition" in sidecar and any("desc-rois_dseg" in s for s in sidecar["Sources"])
        # res- needs a Resolution key that says what "conformed" is: the dseg's grid, with its shape
        assert sidecar["Resolution"].startswith("conformed: FreeSurfer's conformed grid")
        assert " x ".join(map(str, dseg.shape)) in sidecar["Resolution"]
        assert sidecar["SpatialReference"] == f"bids:raw:{participant}/anat/{participant}_T1w.nii.gz"
    spaceless = re.compile(rf"sub-[^_]+_desc-{MODEL}_stat-attention_statmap\..*")
    assert not [p for p in out.glob("sub-*/anat/*") if spaceless.fullmatch(p.name)]


def test_statmap_on_the_t1w_grid_holds_the_same_roi_values_at_the_same_world_points(run):
    out, _, _ = run
    bids = out.parent / "bids"
    for participant in ("sub-002", "sub-007"):
        anat = out / participant / "anat"
        t1w = nib.load(bids / participant / "anat" / f"{participant}_T1w.nii.gz")
        statmap, sidecar = _statmap(anat, participant, "space-T1w")
        conformed, _ = _statmap(anat, participant, "space-T1w_res-conformed")
        assert statmap.shape == t1w.shape[:3] and np.allclose(statmap.affine, t1w.affine)
        t1w_uri = f"bids:raw:{participant}/anat/{participant}_T1w.nii.gz"
        assert sidecar["SpatialReference"] == sidecar["Sources"][0] == t1w_uri
        assert "Resolution" not in sidecar and "nearest neighbour" in sidecar["Description"]
        # the conformed map read at the world point of every T1w voxel (nearest voxel) gives the T1w map's value
        ijk = np.indices(statmap.shape).reshape(3, -1).T
        nearest = np.rint(nib.affines.apply_affine(np.linalg.inv(conformed.affine),
                                                   nib.affines.apply_affine(t1w.affine, ijk))).astype(int)
        inside = np.all((nearest >= 0) & (nearest < np.array(conformed.shape)), axis=1)
        expected = np.zeros(len(ijk))
        expected[inside] = conformed.get_fdata()[tuple(nearest[inside].T)]
        values = statmap.get_fdata()[tuple(ijk.T)]
        assert np.count_nonzero(values) > 1000
        np.testing.assert_allclose(values, expected, rtol=1e-6)


def test_missing_modalities_and_training_participants_are_said(run):
    out, result, _ = run
    image_only = json.loads(outputs_of(out, f"sub-{NO_GENOTYPES}")["predictions"].with_suffix(".json").read_text())
    assert image_only["Modalities"] == ["T1w"] and image_only["ImputedSNPs"] is None
    assert image_only["InputsValidated"] is False and image_only["PanelSNPsObserved"] is None
    assert any("not validated on" in w for w in image_only["Warnings"])
    assert "Unvalidated input: predicted from image" in (out / f"sub-{NO_GENOTYPES}.html").read_text()
    assert any("no genotype sample" in w for w in image_only["Warnings"])
    assert pd.read_csv(outputs_of(out, f"sub-{NO_GENOTYPES}")["roigeneattention"], sep="\t").empty
    assert f"sub-{NO_GENOTYPES} has no genotype sample: predicted from the T1w image only" in result.stderr
    genome_only = json.loads(outputs_of(out, f"sub-{NO_IMAGE}")["predictions"].with_suffix(".json").read_text())
    assert genome_only["Modalities"] == ["genotypes"] and any("no T1w image" in w for w in genome_only["Warnings"])
    rois = pd.read_csv(outputs_of(out, f"sub-{NO_IMAGE}")["roiattention"], sep="\t")
    assert rois["importance"].isna().all() and len(rois) == 109
    # one line for all the training-set participants, not one each
    assert result.stderr.count("were in the training set of the model") == 1 and "HeldOut false" in result.stderr
    assert re.search(r"\d+ of \d+ samples were in the training set of the model \S+: .*sub-001", result.stderr)
    assert "stores no training distribution" in result.stderr and "out-of-distribution scores are n/a" in result.stderr


def test_group_level_reads_the_outputs(run):
    from rgenima_app.workflows.analyse import load_cohort_outputs

    out, _, participants = run
    cohort = load_cohort_outputs(out, MODEL)
    assert sorted(cohort.predictions["participant_id"]) == participants
    assert cohort.roi_importance.shape == (12, 109) and cohort.roi_gene.shape[:2] == (12, 109)
    assert set(cohort.predictions.loc[~cohort.predictions["held_out"], "participant_id"]) == set(TRAINED_ON)


@requires_validator
def test_output_validates(run):
    out, _, _ = run
    result = subprocess.run(["bids-validator-deno", str(out), "--json"], capture_output=True, text=True, timeout=300)
    issues = json.loads(result.stdout)["issues"]["issues"]
    errors = [i for i in issues if i["severity"] == "error"]
    assert errors == [], errors


def test_report_content(run):
    out, _, _ = run
    text = (out / "sub-005.html").read_text()
    predictions = pd.read_csv(outputs_of(out, "sub-005")["predictions"], sep="\t")
    assert f">{predictions['label'].iloc[0]}<small>predicted stage" in text
    for stage in STAGES:
        assert f"{predictions[f'p_{stage}'].iloc[0]:.3f}" in text
    assert "0.613" in text and "0.410 – 0.800" in text and "(7 samples)" in text   # test metrics from the bundle
    assert 'src="data:image/png;base64,' in text and text.count("<svg") >= 4      # slices, bars, heat map
    assert "Top ROIs" in text and "Top genes" in text and "ROI × gene attention" in text
    assert "T1w + genotypes" in text and "Abnar S, Zuidema W" in text and "transformers" in text
    assert "<script" not in text and not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)
    assert set(re.findall(r"https?://[^\s\"'<>]+", text)) <= {"http://www.w3.org/2000/svg",
                                                               "http://www.w3.org/1999/xlink"}
    assert "Out-of-distribution score not available" in text and "Out of distribution</b>" not in text
    held = (out / "sub-001.html").read_text()
    assert "was in the training set" in held
    genome_only = (out / f"sub-{NO_IMAGE}.html").read_text()
    assert "genotypes</b>modalities used" in genome_only and "data:image/png" not in genome_only


def test_report_shows_attention_and_segmentation_on_the_t1w_with_one_colour_scale(run):
    out, _, _ = run
    captions = set()
    for participant in ("sub-004", "sub-005"):
        text = (out / f"{participant}.html").read_text()
        assert f'id="attention-{participant}"' in text and f'id="segmentation-{participant}"' in text
        assert "over this participant's T1w image" in text and "T1w image not available" not in text
        assert text.count('<img class="brain"') == 2 and text.count('src="data:image/png;base64,') == 2
        caption = re.search(r"Colour: importance divided by the uniform share 1/109, (.*?)\. Here", text).group(1)
        captions.add(caption)
        assert "alt=\"ROI importance over the T1w, orthogonal slices, fixed colour scale 1–3× uniform\"" in text
        rois = pd.read_csv(outputs_of(out, participant)["roiattention"], sep="\t")
        above = int((rois["importance"] * 109 > 1).sum())
        assert f"Here {above} of 109 ROIs are above their uniform share" in text
    assert captions == {"on one scale for every participant and model, from 1× (dark; ROIs at or below their uniform "
                        "share are not coloured) to 3× (bright; larger values take the brightest colour)"}


def test_report_without_the_t1w_falls_back_to_the_roi_outline(run, bundle, tmp_path):
    from rgenima_app.bids.derivatives import DerivativesWriter
    from rgenima_app.models.bundle import read_bundle_metadata
    from rgenima_app.reports.subject import render_subject_report

    out = tmp_path / "out"
    shutil.copytree(run[0] / "sub-005", out / "sub-005")
    bundle_stub = type("Bundle", (), {"name": MODEL, "metadata": read_bundle_metadata(bundle)})()
    text = render_subject_report(DerivativesWriter(out, tmp_path / "moved-bids"), "005", bundle_stub).read_text()
    assert "T1w image not available" in text and 'id="segmentation-sub-005"' not in text
    assert text.count('<img class="brain"') == 1 and "on one scale for every participant" in text


@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed")
def test_report_renders_in_headless_chromium(run, tmp_path):
    from analysis.test_group_report import _page_requests, _screenshot
    from matplotlib.image import imread

    png, netlog = _screenshot(run[0] / "sub-005.html", tmp_path, "subject")
    pixels = imread(png)[..., :3]
    assert pixels.shape[:2] == (2400, 1280)
    assert pixels.std() > 0.05 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 200
    assert _page_requests(netlog) == []


# ------------------------------------------------------------------------------------ bad bundles
def _edit(bundle, tmp_path, **changes):
    copy = tmp_path / "edited"
    shutil.copytree(bundle, copy)
    meta = json.loads((copy / "rgenima.json").read_text())
    for key, value in changes.items():
        if key == "roi_size":
            meta["rois"]["size"] = value
        else:
            meta[key] = value
    (copy / "rgenima.json").write_text(json.dumps(meta))
    return copy


def test_bundle_with_another_roi_size_is_refused(tiny_cohort, bundle, tmp_path):
    out = tmp_path / "out"
    result = run_rgenima(tiny_cohort / "bids", out, "participant", "--model", _edit(bundle, tmp_path, roi_size=16),
                         "--fs-subjects-dir", tiny_cohort / "freesurfer", "--roi-size", "8", "--skip-bids-validation")
    assert result.returncode == 2, result.stderr
    assert "--roi-size 8 differs from the ROI size 16" in result.stderr and "run with --roi-size 16" in result.stderr
    assert "Traceback" not in result.stderr and not any(out.glob("sub-*"))


def test_bundle_with_other_labels_is_refused(tiny_cohort, bundle, tmp_path):
    result = run_rgenima(tiny_cohort / "bids", tmp_path / "out", "participant", "--model",
                         _edit(bundle, tmp_path, labels=["CN", "MCI", "AD"]), "--roi-size", "8",
                         "--fs-subjects-dir", tiny_cohort / "freesurfer", "--skip-bids-validation")
    assert result.returncode == 66, result.stderr
    assert "labels" in result.stderr and "rgenima.json" in result.stderr and "Traceback" not in result.stderr


def test_without_genotypes_the_image_is_used_when_allowed(tiny_cohort, bundle, tmp_path):
    out = tmp_path / "out"
    result = run_rgenima(tiny_cohort / "bids", out, "participant", "--model", bundle, "--participant-label", "004",
                         "--fs-subjects-dir", tiny_cohort / "freesurfer", "--roi-size", "8", "--skip-bids-validation",
                         "--allow-unvalidated-inputs")
    assert result.returncode == 0, result.stderr
    assert "no --genotypes was given" in result.stderr
    sidecar = json.loads(outputs_of(out, "sub-004")["predictions"].with_suffix(".json").read_text())
    assert sidecar["Modalities"] == ["T1w"] and sidecar["HeldOut"] is True
    assert pd.read_csv(outputs_of(out, "sub-004")["geneattention"], sep="\t").empty
    assert not (out / "sub-004" / "genotype").exists() and (out / "sub-004.html").is_file()


def test_a_failing_participant_does_not_lose_the_others(tiny_cohort, bundle, tmp_path):
    subjects = tmp_path / "freesurfer"
    shutil.copytree(tiny_cohort / "freesurfer", subjects)
    shutil.rmtree(subjects / "sub-006")
    out = tmp_path / "out"
    result = run_rgenima(tiny_cohort / "bids", out, "participant", "--model", bundle, "--participant-label", "005", "006",
                         "--genotypes", tiny_cohort / "genotypes" / "cohort.bed", "--fs-subjects-dir", subjects,
                         "--fs-no-reconall", "--roi-size", "8", "--skip-bids-validation")
    assert result.returncode == 1, result.stderr
    assert "1 of 2 sample(s) failed" in result.stderr and "sub-006" in result.stderr and "Traceback" not in result.stderr
    assert outputs_of(out, "sub-005")["predictions"].is_file() and (out / "sub-005.html").is_file()
    assert not outputs_of(out, "sub-006")["predictions"].exists()
    report = (out / "sub-006.html").read_text()   # says what failed
    assert '<section id="errors">' in report and "sub-006: " in report and "No prediction" in report
    assert '<section id="errors">' not in (out / "sub-005.html").read_text()


# ------------------------------------------------------------------ one rule for a missing modality
@pytest.mark.parametrize("situation", ["whole run", "one participant", "all participants"])
def test_an_unvalidated_input_configuration_is_refused(tiny_cohort, bundle, tmp_path, situation):
    """The model (mixture) is not validated on the image alone: a run without --genotypes, one participant
    without a genotype sample, or all participants without one are refused alike, before any output."""
    bids = tmp_path / "bids"
    shutil.copytree(tiny_cohort / "bids", bids)
    table = pd.read_csv(bids / "participants.tsv", sep="\t")
    missing = {"whole run": [], "one participant": ["005"], "all participants": ["004", "005"]}[situation]
    table.loc[table["participant_id"].isin([f"sub-{m}" for m in missing]), "genetic_id"] = "NOT-GENOTYPED"
    table.to_csv(bids / "participants.tsv", sep="\t", index=False)
    genotypes = [] if situation == "whole run" else ["--genotypes", tiny_cohort / "genotypes" / "cohort.bed"]
    out = tmp_path / "out"
    result = run_rgenima(bids, out, "participant", "--model", bundle, "--participant-label", "004", "005",
                         *genotypes, "--fs-subjects-dir", tiny_cohort / "freesurfer", "--roi-size", "8",
                         "--skip-bids-validation")
    assert result.returncode == 2, result.stderr
    refused = ["004", "005"] if situation != "one participant" else ["005"]
    for label in ("004", "005"):
        assert (f"sub-{label}: image" in result.stderr) == (label in refused), result.stderr
    assert "validated on image+genes and genes inputs only" in result.stderr
    assert "--allow-unvalidated-inputs" in result.stderr and "Traceback" not in result.stderr
    assert not any(out.glob("sub-*"))


@pytest.fixture(scope="module")
def sparse_genotypes(tiny_cohort, bundle, tmp_path_factory):
    """The cohort's genotypes with only a fifth of the model's panel SNPs left (plink1.9 --extract)."""
    plink = shutil.which("plink1.9") or shutil.which("plink")
    if plink is None:
        pytest.skip("plink1.9 is not installed")
    root = tmp_path_factory.mktemp("sparse")
    panel = pd.read_csv(bundle / "snp_panel.tsv", sep="\t")
    keep = panel["snp"].iloc[: len(panel) // 5]
    (root / "keep.txt").write_text("\n".join(keep) + "\n")
    subprocess.run([plink, "--bfile", str(tiny_cohort / "genotypes" / "cohort"), "--extract", str(root / "keep.txt"),
                    "--make-bed", "--keep-allele-order", "--allow-no-sex", "--out", str(root / "sparse")],
                   check=True, capture_output=True)
    return root / "sparse.bed", len(keep), len(panel)


def test_low_panel_coverage_counts_as_missing_genotypes(tiny_cohort, bundle, sparse_genotypes, tmp_path):
    bed, kept, total = sparse_genotypes
    common = ["--model", bundle, "--participant-label", "004", "--genotypes", bed, "--fs-subjects-dir",
              tiny_cohort / "freesurfer", "--roi-size", "8", "--skip-bids-validation"]
    refused = run_rgenima(tiny_cohort / "bids", tmp_path / "refused", "participant", *common)
    assert refused.returncode == 2, refused.stderr
    assert f"panel SNPs observed" in refused.stderr and "sub-004: image" in refused.stderr
    assert "--min-panel-coverage 0.5" in refused.stderr

    out = tmp_path / "out"
    result = run_rgenima(tiny_cohort / "bids", out, "participant", *common, "--allow-unvalidated-inputs")
    assert result.returncode == 0, result.stderr
    predictions = pd.read_csv(outputs_of(out, "sub-004")["predictions"], sep="\t")
    row = predictions.iloc[0]
    assert row["modalities"] == "image" and bool(row["panel_coverage_low"]) and not bool(row["inputs_validated"])
    assert row["panel_snps_total"] == total and 0 < row["panel_snps_observed"] <= kept
    assert pd.read_csv(outputs_of(out, "sub-004")["geneattention"], sep="\t").empty   # the genes were not read
    assert "genotypes count as missing" in result.stderr
    report = (out / "sub-004.html").read_text()
    assert "Genotypes not used: only" in report and f"of the model&#39;s {total} panel SNPs" in report

    # a lower threshold (the setting) lets the same genotypes in
    low = tmp_path / "low"
    result = run_rgenima(tiny_cohort / "bids", low, "participant", *common, "--min-panel-coverage", "0.1")
    assert result.returncode == 0, result.stderr
    row = pd.read_csv(outputs_of(low, "sub-004")["predictions"], sep="\t").iloc[0]
    assert row["modalities"] == "image+genes" and not bool(row["panel_coverage_low"]) and bool(row["inputs_validated"])
    assert "Genotypes not used" not in (low / "sub-004.html").read_text()


def test_validated_inputs_of_bundles(bundle, tmp_path):
    from rgenima_app.models.bundle import read_bundle_metadata, trained_inputs, validated_inputs

    meta = read_bundle_metadata(bundle)
    assert meta["validated_inputs"] == ["image+genes", "genes"] and "image+genes, genes" in (
        bundle / "MODEL_CARD.md").read_text()
    old = {k: v for k, v in meta.items() if k != "validated_inputs"}   # a bundle written before the field
    assert validated_inputs(old, True) == ["image+genes", "genes"]
    old["training"] = {"data": "image_gene"}
    assert validated_inputs(old, True) == ["image+genes"]
    old["training"] = {}   # no data mode recorded: only the model's full configuration
    assert validated_inputs(old, True) == ["image+genes"] and validated_inputs(old, False) == ["image"]
    assert trained_inputs("gene", False, True) == ["genes"] and trained_inputs("image", True, False) == ["image"]
