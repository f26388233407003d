"""``rgenima participant`` end to end on a BIDS dataset made from real FreeSurfer 6 subjects."""
from __future__ import annotations

import json
import subprocess

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from helpers import real_freesurfer_bids, requires_validator, run_rgenima

SUBJECTS = ("01", "07")


@pytest.fixture(scope="module")
def real_bids(shared_data, tmp_path_factory):
    """T1.mgz of two real subjects as a BIDS dataset, and a SUBJECTS_DIR linking to their FreeSurfer runs."""
    return real_freesurfer_bids(shared_data, tmp_path_factory.mktemp("real"),
                                {label: ("fs6", f"sub-{label}", "T1.mgz") for label in SUBJECTS},
                                name="FreeSurfer training subjects")


@requires_validator
def test_participant_level_on_real_subjects(real_bids, tmp_path):
    bids, subjects_dir = real_bids
    out = tmp_path / "out"
    result = run_rgenima(bids, out, "participant", "--fs-subjects-dir", subjects_dir, "--fs-no-reconall",
                         "--roi-size", "16")
    assert result.returncode == 0, result.stderr
    for label in SUBJECTS:
        anat = out / f"sub-{label}" / "anat"
        dseg = nib.load(anat / f"sub-{label}_desc-rois_dseg.nii.gz")
        aparc = nib.load(subjects_dir / f"sub-{label}" / "mri" / "aparc+aseg.mgz")
        assert dseg.shape == aparc.shape and np.allclose(dseg.affine, aparc.affine)
        assert set(np.unique(np.asarray(dseg.dataobj))) == set(range(110))
        morph = pd.read_csv(anat / f"sub-{label}_desc-rois_morph.tsv", sep="\t")
        assert len(morph) == 109 and morph["present"].all()
        sidecar = json.loads((anat / f"sub-{label}_desc-rois_dseg.json").read_text())
        assert sidecar["Sources"][0] == f"bids:raw:sub-{label}/anat/sub-{label}_T1w.nii.gz"
    report = json.loads(subprocess.run(["bids-validator-deno", "--format", "json", str(out)],
                                       capture_output=True, text=True).stdout)
    assert [i for i in report["issues"]["issues"] if i["severity"] == "error"] == []
