"""A synthetic cohort as plain numbers: ROI volumes, SNP dosages and diagnoses, for the interpretation controls.

The positive control of the interpretability benchmark (docs/benchmarks.md) is a linear model on exactly
these numbers; it needs neither ROI extraction nor a trained model, so it is read straight from the cohort:
each participant's ROI volume is its voxel count in ``aparc+aseg.mgz`` (canonical ROI order), and the
dosages are the A1 counts of the cohort's PLINK set (a missing call gets the SNP's mean dosage).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from rgenima_app.genetics.readers import open_genotypes
from rgenima_app.imaging.roi_table import roi_names
from rgenima_app.imaging.volumes import roi_index_array


@dataclass
class CohortFeatures:
    participants: list[str]      # sub-<label>, first session
    diagnosis: list[str]
    volumes: np.ndarray          # participants x 109 ROIs (mm^3)
    dosages: np.ndarray          # participants x SNPs (A1 counts)
    snp_genes: list[str]         # gene of each SNP column
    planted_rois: list[str]
    planted_genes: list[str]


def roi_volumes(aparc_aseg: Path) -> np.ndarray:
    """Volume (mm^3) of each of the 109 canonical ROIs in one segmentation."""
    image = nib.load(str(aparc_aseg))
    index = roi_index_array(np.asarray(image.dataobj), str(aparc_aseg))
    voxel = float(np.prod(image.header.get_zooms()[:3]))
    return np.bincount(index.ravel(), minlength=len(roi_names()) + 1)[1:] * voxel  # index 0: not an ROI


def cohort_features(cohort: Path, participants: list[str] | None = None) -> CohortFeatures:
    """The features of ``participants`` (default: all of participants.tsv) of a cohort made by ``generate_cohort``."""
    cohort = Path(cohort)
    table = pd.read_csv(cohort / "bids" / "participants.tsv", sep="\t", dtype=str).set_index("participant_id")
    participants = list(participants or table.index)
    truth = json.loads((cohort / "ground_truth.json").read_text())
    volumes = np.stack([roi_volumes(next((cohort / "freesurfer").glob(f"{p}*/mri/aparc+aseg.mgz")))
                        for p in participants])
    reader = open_genotypes(cohort / "genotypes" / "cohort.bed")
    chunk = reader.read()
    column = {s: j for j, s in enumerate(reader.samples)}
    dosage = chunk.dosage[:, [column[table.loc[p, "genetic_id"]] for p in participants]].T.astype(float)
    dosage[dosage < 0] = np.nan
    dosage = np.where(np.isnan(dosage), np.nanmean(dosage, axis=0), dosage)
    genes = pd.read_csv(cohort / "snps.tsv", sep="\t").set_index("snp")["gene"]
    return CohortFeatures(participants=participants, diagnosis=list(table.loc[participants, "diagnosis"]),
                          volumes=volumes, dosages=dosage, snp_genes=list(genes.reindex(chunk.variants["snp"])),
                          planted_rois=list(truth["planted_rois"]), planted_genes=list(truth["planted_genes"]))
