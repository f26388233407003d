"""The participant level's genotype stage, through the console script, on the synthetic cohort."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
from bed_reader import open_bed

from helpers import run_rgenima


def test_panel_genotypes_are_written_per_participant(tiny_cohort, tmp_path):
    out = tmp_path / "out"
    result = run_rgenima(tiny_cohort / "bids", out, "participant", "--skip-bids-validation", "--roi-size", "8",
                         "--fs-subjects-dir", tiny_cohort / "freesurfer",
                         "--genotypes", tiny_cohort / "genotypes" / "cohort.bed", "--participant-label", "002", "005")
    assert result.returncode == 0, result.stderr
    participants = pd.read_csv(tiny_cohort / "bids" / "participants.tsv", sep="\t").set_index("participant_id")
    with open_bed(tiny_cohort / "genotypes" / "cohort.bed") as bed:
        dosage = pd.DataFrame(bed.read(), index=bed.iid, columns=bed.sid)
    missing_rate = dosage.isna().mean()
    a1_freq = dosage.mean() / 2
    passing = set(dosage.columns[(missing_rate <= 0.05) & (np.minimum(a1_freq, 1 - a1_freq) >= 0.05)])
    for label in ("002", "005"):
        path = out / f"sub-{label}" / "genotype" / f"sub-{label}_desc-panel_genotypes.tsv"
        table = pd.read_csv(path, sep="\t")
        assert list(table.columns) == ["snp", "gene", "chrom", "pos", "a1", "a2", "dosage", "imputed"]
        assert set(table["snp"]) <= passing  # missingness and MAF filters, computed here independently
        assert len(table) > 0.5 * len(passing)
        raw = dosage.loc[participants.loc[f"sub-{label}", "genetic_id"], table["snp"]].to_numpy()
        called = ~table["imputed"].to_numpy(bool)
        assert np.array_equal(table["dosage"].to_numpy()[called], raw[called])
        assert np.isnan(raw[~called]).all()
        sidecar = json.loads(path.with_suffix(".json").read_text())
        assert sidecar["GenomeBuild"] == "GRCh37" and "A1" in sidecar["DosageOf"]


def test_participant_without_genotypes_is_reported_not_fatal(tiny_cohort, tmp_path):
    bids = tmp_path / "bids"
    shutil.copytree(tiny_cohort / "bids", bids)
    table = pd.read_csv(bids / "participants.tsv", sep="\t")
    table.loc[table["participant_id"] == "sub-003", "genetic_id"] = "NOT-GENOTYPED"
    table.to_csv(bids / "participants.tsv", sep="\t", index=False)
    out = tmp_path / "out"
    result = run_rgenima(bids, out, "participant", "--skip-bids-validation", "--roi-size", "8",
                         "--fs-subjects-dir", tiny_cohort / "freesurfer",
                         "--genotypes", tiny_cohort / "genotypes" / "cohort.bed", "--participant-label", "003", "004")
    assert result.returncode == 0, result.stderr
    assert "sub-003" in result.stderr and "no genotypes" in result.stderr
    assert not (out / "sub-003" / "genotype").exists()
    assert (out / "sub-004" / "genotype" / "sub-004_desc-panel_genotypes.tsv").is_file()
    assert (out / "sub-003" / "anat" / "sub-003_desc-rois_dseg.nii.gz").is_file()
