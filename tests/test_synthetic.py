"""The synthetic cohort generator: valid BIDS, consistent FreeSurfer files, and a correct ground truth."""
from __future__ import annotations

import json
import subprocess
import sys

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from helpers import requires_validator
from rgenima_app import STAGES
from rgenima_app.genetics.panel import load_gene_panel
from rgenima_app.imaging.roi_table import load_roi_table
from rgenima_app.synthetic import (DEFAULT_PLANTED_GENES, DEFAULT_PLANTED_ROIS, PRESETS, GeneratorParameters,
                                   build_phantom, generate_cohort)
from rgenima_app.synthetic.cohort import image_likelihood, kept_counts


def params(n=12, seed=0, sessions=1, **kw):
    spec = PRESETS["tiny"]
    base = dict(preset="tiny", seed=seed, n_participants=n, sessions=sessions, grid=spec["grid"],
                voxel_mm=spec["voxel_mm"], snps_per_gene=spec["snps_per_gene"],
                planted_rois=list(DEFAULT_PLANTED_ROIS), planted_genes=list(DEFAULT_PLANTED_GENES))
    base.update(kw)
    return GeneratorParameters(**base)


def validator_errors(path):
    report = json.loads(subprocess.run(["bids-validator-deno", "--format", "json", str(path)],
                                       capture_output=True, text=True).stdout)
    return [(i["code"], i.get("location")) for i in report["issues"]["issues"] if i["severity"] == "error"]


@pytest.mark.parametrize("grid,voxel", [(PRESETS[p]["grid"], PRESETS[p]["voxel_mm"]) for p in ("tiny", "demo")])
def test_phantom_has_every_roi_in_its_place(grid, voxel):
    phantom = build_phantom(grid, voxel)
    table = load_roi_table()
    counts = np.bincount(phantom.labels.ravel(), minlength=3000)
    assert all(counts[label] > 0 for label in table["label"])
    assert set(np.unique(phantom.labels)) - {0} == set(table["label"])
    ijk = np.argwhere(phantom.labels == 17).mean(axis=0)  # left hippocampus: left, medial temporal
    x, y, z = (phantom.affine @ np.append(ijk, 1.0))[:3]
    assert x < -10 and -45 < y < 0 and z < 0
    left_ctx = np.argwhere((phantom.labels > 1000) & (phantom.labels < 2000))[:, 0]
    right_ctx = np.argwhere(phantom.labels > 2000)[:, 0]
    assert left_ctx.max() < phantom.shape[0] / 2 <= right_ctx.min()


@requires_validator
def test_tiny_cohort_is_valid_bids(tiny_cohort):
    assert validator_errors(tiny_cohort / "bids") == []


@requires_validator
def test_demo_preset_with_two_sessions_is_valid_bids(tmp_path):
    spec = PRESETS["demo"]
    out = tmp_path / "demo"
    generate_cohort(out, params(n=3, sessions=2, preset="demo", grid=spec["grid"], voxel_mm=spec["voxel_mm"],
                                snps_per_gene=spec["snps_per_gene"]), progress=False)
    assert validator_errors(out / "bids") == []
    assert (out / "bids" / "sub-001" / "ses-2" / "anat" / "sub-001_ses-2_T1w.nii.gz").is_file()
    assert (out / "freesurfer" / "sub-003_ses-1" / "mri" / "aparc+aseg.mgz").is_file()
    truth = pd.read_csv(out / "ground_truth.tsv", sep="\t", dtype={"session": str})
    assert list(truth["session"]) == ["1", "2"] * 3


def test_aseg_stats_match_the_segmentation(tiny_cohort):
    table = load_roi_table()
    for subject in ("sub-001", "sub-007"):
        mri = tiny_cohort / "freesurfer" / subject / "mri"
        aparc = np.asarray(nib.load(mri / "aparc+aseg.mgz").dataobj)
        aseg = np.asarray(nib.load(mri / "aseg.mgz").dataobj)
        counts = np.bincount(aparc.ravel(), minlength=3000)
        rows = [line.split() for line in (tiny_cohort / "freesurfer" / subject / "stats" / "aseg.stats").read_text().splitlines()
                if not line.startswith("#")]
        assert len(rows) == 39
        for row in rows:
            label, n_voxels = int(row[1]), int(row[2])
            assert n_voxels == counts[label], (subject, row[4])
            assert float(row[3]) == pytest.approx(n_voxels * 4.0 ** 3)
        cortical = table.loc[table["kind"] == "cortical", "label"]
        assert np.isin(aseg, list(cortical)).sum() == 0
        assert (aseg == 3).sum() == sum(counts[c] for c in cortical if c < 2000)


def test_freesurfer_files_share_the_t1w_space(tiny_cohort):
    t1w = nib.load(tiny_cohort / "bids" / "sub-002" / "anat" / "sub-002_T1w.nii.gz")
    t1 = nib.load(tiny_cohort / "freesurfer" / "sub-002" / "mri" / "T1.mgz")
    assert nib.aff2axcodes(t1.affine) == ("L", "I", "A")  # FreeSurfer's conformed orientation
    assert nib.aff2axcodes(t1w.affine) == ("R", "A", "S")
    reoriented = t1.as_reoriented(nib.orientations.ornt_transform(
        nib.orientations.io_orientation(t1.affine), nib.orientations.io_orientation(t1w.affine)))
    assert np.allclose(reoriented.affine, t1w.affine)
    assert np.array_equal(np.asarray(reoriented.dataobj), np.asarray(t1w.dataobj))


def test_participants_and_genotypes(tiny_cohort):
    participants = pd.read_csv(tiny_cohort / "bids" / "participants.tsv", sep="\t")
    assert list(participants.columns) == ["participant_id", "diagnosis", "age", "sex", "genetic_id"]
    assert set(participants["diagnosis"]) <= set(STAGES)
    from bed_reader import open_bed

    with open_bed(tiny_cohort / "genotypes" / "cohort.bed") as bed:
        assert list(bed.iid) == list(participants["genetic_id"])
        dosage = bed.read()
        chrom, pos, sid = bed.chromosome, bed.bp_position, bed.sid
    assert np.isnan(dosage).any() and set(np.unique(dosage[~np.isnan(dosage)])) <= {0.0, 1.0, 2.0}
    snps = pd.read_csv(tiny_cohort / "snps.tsv", sep="\t", dtype={"chrom": str})
    assert list(sid) == list(snps["snp"])
    panel = load_gene_panel("GRCh37").set_index("gene")
    for row, c, p in zip(snps.itertuples(), chrom, pos):
        gene = panel.loc[row.gene]
        assert c == gene["chrom"] and gene["start"] <= p <= gene["end"]


def test_ground_truth_documents_the_model(tiny_cohort):
    truth = json.loads((tiny_cohort / "ground_truth.json").read_text())
    assert truth["planted_rois"] == DEFAULT_PLANTED_ROIS
    assert truth["planted_genes"] == DEFAULT_PLANTED_GENES
    assert [s["gene"] for s in truth["planted_snps"]] == DEFAULT_PLANTED_GENES
    assert 0.25 < truth["bayes_optimal_accuracy"] <= 1.0
    assert truth["parameters"]["seed"] == 7
    table = pd.read_csv(tiny_cohort / "ground_truth.tsv", sep="\t")
    probabilities = table[[f"p_{s}" for s in STAGES]].to_numpy()
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert truth["bayes_optimal_accuracy"] == pytest.approx(probabilities.max(axis=1).mean(), abs=1e-5)


def test_planted_rois_shrink_with_stage_and_others_do_not(tmp_path):
    out = tmp_path / "c"
    generate_cohort(out, params(n=60, seed=3), progress=False)
    truth = pd.read_csv(out / "ground_truth.tsv", sep="\t")
    volumes = {}
    for row in truth.itertuples():
        counts = np.bincount(np.asarray(nib.load(out / "freesurfer" / row.participant_id / "mri" / "aparc+aseg.mgz").dataobj).ravel(),
                             minlength=3000)
        volumes[row.participant_id] = (row.stage, counts[17] + counts[53], counts[12] + counts[51])
    frame = pd.DataFrame(volumes.values(), columns=["stage", "hippocampi", "putamina"])
    means = frame.groupby("stage").mean()
    assert means.loc["AD", "hippocampi"] < means.loc["MCI", "hippocampi"] < means.loc["NC", "hippocampi"]
    spread = frame["putamina"].std() / np.sqrt(len(frame)) * 4
    assert abs(means.loc["AD", "putamina"] - means.loc["NC", "putamina"]) < spread * 2


def test_bayes_posterior_is_calibrated(tmp_path):
    """Expected accuracy of the Bayes classifier matches its accuracy on the drawn labels."""
    out = tmp_path / "c"
    generate_cohort(out, params(n=300, seed=11), progress=False)
    truth = pd.read_csv(out / "ground_truth.tsv", sep="\t")
    y = truth["stage"].map(STAGES.index).to_numpy()
    for prefix in ("p", "p_gene", "p_image"):
        post = truth[[f"{prefix}_{s}" for s in STAGES]].to_numpy()
        expected, observed = post.max(axis=1).mean(), (post.argmax(axis=1) == y).mean()
        se = np.sqrt(expected * (1 - expected) / len(y))
        assert abs(expected - observed) < 4 * se, prefix
        log_loss = -np.log(np.clip(post[np.arange(len(y)), y], 1e-12, None)).mean()
        assert log_loss < np.log(4), prefix  # better than knowing nothing


def test_image_likelihood_integrates_to_one_over_counts():
    base = np.array([40])
    counts = np.arange(0, 41)[:, None]
    means = np.array([[0.92], [0.85]])
    total = image_likelihood(counts, base, means, 0.04).sum(axis=0)
    assert np.allclose(total, 1.0)
    assert kept_counts(base, np.array([1.0]))[0] == 40 and kept_counts(base, np.array([0.5]))[0] == 20


def test_same_seed_same_cohort(tmp_path):
    for name in ("a", "b"):
        generate_cohort(tmp_path / name, params(n=4, seed=5), progress=False)
    assert (tmp_path / "a" / "ground_truth.tsv").read_text() == (tmp_path / "b" / "ground_truth.tsv").read_text()
    for path in ("genotypes/cohort.bed", "freesurfer/sub-003/mri/aparc+aseg.mgz"):
        assert (tmp_path / "a" / path).read_bytes() == (tmp_path / "b" / path).read_bytes()


def test_command_line(tmp_path):
    out = tmp_path / "cli"
    result = subprocess.run([sys.executable, "-m", "rgenima_app.synthetic", str(out), "--preset", "tiny", "--seed", "2",
                             "--n-participants", "4", "--planted-rois", "Left-Hippocampus,ctx-lh-entorhinal",
                             "--planted-genes", "APOE"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    truth = json.loads((out / "ground_truth.json").read_text())
    assert truth["planted_rois"] == ["Left-Hippocampus", "ctx-lh-entorhinal"] and truth["planted_genes"] == ["APOE"]
    again = subprocess.run([sys.executable, "-m", "rgenima_app.synthetic", str(out)], capture_output=True, text=True)
    assert again.returncode == 2 and "--overwrite" in again.stderr
    bad = subprocess.run([sys.executable, "-m", "rgenima_app.synthetic", str(tmp_path / "x"), "--planted-rois",
                          "Left-Hipocampus"], capture_output=True, text=True)
    assert bad.returncode == 2 and "Left-Hipocampus" in bad.stderr and "Traceback" not in bad.stderr
