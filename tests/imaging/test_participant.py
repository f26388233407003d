"""Participant imaging: reuse of a FreeSurfer subject, the work-dir cache and the derivatives."""
from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from rgenima_app.bids.derivatives import DerivativesWriter
from rgenima_app.errors import MissingInputError
from rgenima_app.imaging.freesurfer import FreeSurferOptions
from rgenima_app.imaging.participant import process_participant_imaging, write_participant_imaging
from rgenima_app.imaging.rois import MORPH_COLUMNS

S = 12


@pytest.fixture
def layout(tmp_path, make_volumes, save_volumes):
    intensity, seg = make_volumes()
    subjects = tmp_path / "out" / "sourcedata" / "freesurfer"
    save_volumes(subjects / "sub-01_ses-1" / "mri", intensity, seg)
    t1w = tmp_path / "bids" / "sub-01" / "ses-1" / "anat" / "sub-01_ses-1_T1w.nii.gz"
    t1w.parent.mkdir(parents=True)
    t1w.write_bytes(b"raw")
    return tmp_path, subjects, t1w, intensity, seg


def run(tmp_path, subjects, t1w, **kw):
    return process_participant_imaging("01", "1", t1w, FreeSurferOptions(subjects, no_reconall=True), tmp_path / "work",
                                       roi_size=S, **kw)


def test_cache_is_reused_and_keyed_by_content(layout, save_volumes):
    tmp_path, subjects, t1w, intensity, seg = layout
    first = run(tmp_path, subjects, t1w)
    assert not first.cache_hit and first.freesurfer.reused
    patches = np.load(first.patches_path)
    assert patches.shape == (109, S, S, S)
    second = run(tmp_path, subjects, t1w)
    assert second.cache_hit and second.patches_path == first.patches_path
    np.testing.assert_array_equal(second.load_patches(), patches)
    pd.testing.assert_frame_equal(second.morph, first.morph)
    np.testing.assert_array_equal(np.asanyarray(second.dseg.dataobj), np.asanyarray(first.dseg.dataobj))
    # new intensity content -> new key, fresh extraction, the old entry is dropped
    save_volumes(subjects / "sub-01_ses-1" / "mri", intensity * 2, seg)
    third = run(tmp_path, subjects, t1w)
    assert not third.cache_hit and third.patches_path != first.patches_path
    assert not first.patches_path.exists()
    assert run(tmp_path, subjects, t1w, mode="fit").patches_path != third.patches_path


def test_derivatives_written(layout):
    tmp_path, subjects, t1w, intensity, seg = layout
    result = run(tmp_path, subjects, t1w)
    writer = DerivativesWriter(tmp_path / "out", source_dir=tmp_path / "bids")
    paths = write_participant_imaging(result, writer, "sub-01", "ses-1")
    assert paths["dseg"] == tmp_path / "out" / "sub-01" / "ses-1" / "anat" / "sub-01_ses-1_desc-rois_dseg.nii.gz"
    dseg = nib.load(str(paths["dseg"]))
    assert dseg.get_data_dtype() == np.uint8 and dseg.shape == seg.shape
    sidecar = json.loads(paths["dseg"].with_name("sub-01_ses-1_desc-rois_dseg.json").read_text())
    assert sidecar["Sources"] == ["bids:raw:sub-01/ses-1/anat/sub-01_ses-1_T1w.nii.gz",
                                  "bids::sourcedata/freesurfer/sub-01_ses-1/mri/aparc+aseg.mgz"]
    morph = pd.read_csv(paths["morph"], sep="\t")
    assert list(morph.columns) == MORPH_COLUMNS and len(morph) == 109
    assert morph.loc[morph["label"] == 17, "voxels"].item() == (seg == 17).sum()
    assert (morph.loc[~morph["present"], "bbox_i_min"].isna()).all()
    assert paths["morph"].with_suffix(".json").is_file()
    from derivatives_spec import unlisted_files

    unlisted = [f for f in unlisted_files(tmp_path / "out") if not f.startswith("sourcedata/")]
    assert unlisted == [], unlisted  # every imaging derivative is listed in bids_spec/derivatives.yaml


def test_missing_subject_writes_nothing(layout):
    tmp_path, subjects, t1w, *_ = layout
    with pytest.raises(MissingInputError, match="sub-02"):
        process_participant_imaging("02", None, t1w, FreeSurferOptions(subjects, no_reconall=True), tmp_path / "work",
                                    roi_size=S)
    assert not (tmp_path / "work" / "rois" / "sub-02").exists()
