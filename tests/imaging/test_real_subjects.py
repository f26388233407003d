"""ROI extraction on the real FreeSurfer subjects of ../shared/data (skipped when absent)."""
from __future__ import annotations

import numpy as np
import pytest

from rgenima_app.imaging.roi_table import N_ROIS, load_roi_table
from rgenima_app.imaging.rois import extract_rois, roi_morphometry
from rgenima_app.imaging.volumes import load_image

pytestmark = pytest.mark.shared_data
SUBJECTS = ["fs6/sub-01", "fs6/sub-02", "fs6/sub-04", "fs6/sub-06", "fs6/sub-07", "fs6/sub-08",
            "fs6/sub-09", "fs6/sub-10", "fs7/bert"]


def subject_files(shared_data, subject):
    mri = shared_data / "freesurfer" / subject / "mri"
    intensity = mri / "T1.mgz" if (mri / "T1.mgz").is_file() else mri / "norm.mgz"  # bert has no T1.mgz
    return intensity, mri / "aparc+aseg.mgz", mri / "aseg.mgz", mri.parent / "stats" / "aseg.stats"


def aseg_stats_nvoxels(path):
    """SegId -> NVoxels of FreeSurfer's stats/aseg.stats."""
    counts = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            fields = line.split()
            counts[int(fields[1])] = int(fields[2])
    return counts


@pytest.mark.parametrize("subject", SUBJECTS)
def test_voxel_counts_match_freesurfer_stats(shared_data, subject):
    """Every non-cortical ROI's voxel count equals aseg.stats' NVoxels.

    aseg.stats has no row for the cerebral white matter (2, 41), whose volume FreeSurfer reports
    from the surfaces; for those two the count is checked against aseg.mgz, which aparc+aseg
    leaves unchanged for every non-cortical label.
    """
    intensity, aparc, aseg, stats = subject_files(shared_data, subject)
    morph = roi_morphometry(intensity, aparc)
    assert morph["present"].all(), morph.loc[~morph["present"], "name"].tolist()
    nvoxels = aseg_stats_nvoxels(stats)
    _, aseg_data = load_image(aseg, "segmentation")
    kinds = load_roi_table()["kind"]
    non_cortical = morph[(kinds != "cortical").to_numpy()]
    assert len(non_cortical) == 41
    for _, row in non_cortical.iterrows():
        expected = nvoxels.get(row["label"])
        if expected is None:
            assert row["label"] in (2, 41)
            expected = int((aseg_data == row["label"]).sum())
        assert row["voxels"] == expected, row["name"]
    assert (morph["volume_mm3"] == morph["voxels"]).all()  # conformed 1 mm voxels


@pytest.mark.parametrize("subject,size", [("fs6/sub-01", 96), ("fs7/bert", 24)])
def test_patches_on_real_subject(shared_data, subject, size):
    intensity, aparc, *_ = subject_files(shared_data, subject)
    result = extract_rois(intensity, aparc, roi_size=size, device="cpu")
    patches = result.patches
    assert patches.shape == (N_ROIS, size, size, size)
    assert result.present.all() and all(np.count_nonzero(p) > 0 for p in patches)
    _, seg = load_image(aparc, "segmentation")
    table = result.table
    # every non-zero patch voxel is a blend of voxels of its own label: at least one of the 8
    # interpolation corners (stretch positions) carries the label
    for i, row in table.iterrows():
        lo = np.array([row["bbox_i_min"], row["bbox_j_min"], row["bbox_k_min"]], dtype=float)
        hi = np.array([row["bbox_i_max"], row["bbox_j_max"], row["bbox_k_max"]], dtype=float)
        idx = np.argwhere(patches[i] != 0)
        pos = lo + idx * (hi - lo) / (size - 1)
        inside = np.zeros(len(idx), dtype=bool)
        for offset in np.indices((2, 2, 2)).reshape(3, -1).T:
            corner = np.minimum(np.floor(pos) + offset, hi).astype(int)
            inside |= seg[corner[:, 0], corner[:, 1], corner[:, 2]] == row["label"]
        assert inside.all(), row["name"]
    # white matter normalisation: the mean over cerebral WM becomes 1, and interpolation never
    # leaves the range of the (scaled) intensities
    wm = table[table["label"].isin([2, 41])]
    wm_mean = (wm["intensity_mean"] * wm["voxels"]).sum() / wm["voxels"].sum()
    assert wm_mean * result.intensity_scale == pytest.approx(1.0, rel=1e-6)
    _, raw = load_image(intensity, "intensity")
    assert patches.min() >= 0 and patches.max() <= raw.max() * result.intensity_scale * (1 + 1e-6)
