"""ROI extraction on synthetic volumes: table, patches, modes, normalisation and input errors."""
from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest
import scipy.ndimage as ndi

from rgenima_app.errors import MissingInputError, ProcessingError
from rgenima_app.imaging.roi_table import N_ROIS, roi_labels
from rgenima_app.imaging.rois import MORPH_COLUMNS, extract_rois, roi_index_image, roi_morphometry

S = 16
HIPPO, ISTHMUS, INSULA, WM = (roi_labels().index(lab) for lab in (17, 1010, 1035, 2))


def naive_patch(intensity, seg, label, size):
    """The reference: full-volume mask, np.where box, scipy zoom order 1."""
    mask = seg == label
    where = np.where(mask)
    box = tuple(slice(w.min(), w.max() + 1) for w in where)
    crop = (intensity * mask)[box]
    # mode="nearest": with the default "constant", rounding can put the last sample a hair past the
    # edge, where scipy returns 0 (a box-shaped ROI shows it; real ROIs rarely touch their box corners)
    return ndi.zoom(crop, [size / n for n in crop.shape], order=1, mode="nearest")


def test_table_counts_boxes_and_intensity(synthetic_pair):
    t1, aparc, intensity, seg = synthetic_pair
    result = extract_rois(t1, aparc, roi_size=S)
    table = result.table
    assert list(table["index"]) == list(range(1, N_ROIS + 1))
    assert list(table["label"]) == roi_labels()
    for i, label in ((HIPPO, 17), (ISTHMUS, 1010), (INSULA, 1035), (WM, 2)):
        row = table.iloc[i]
        mask = seg == label
        where = np.where(mask)
        assert row["present"] and row["voxels"] == mask.sum() and row["volume_mm3"] == mask.sum()
        assert [row[c] for c in ("bbox_i_min", "bbox_i_max", "bbox_j_min", "bbox_j_max", "bbox_k_min", "bbox_k_max")] \
            == [v for w in where for v in (w.min(), w.max())]
        assert row["intensity_mean"] == pytest.approx(intensity[mask].mean(), rel=1e-6)
        assert row["intensity_sd"] == pytest.approx(intensity[mask].std(), rel=1e-4, abs=1e-6)
    assert table["present"].sum() == 4  # the unknown label 3 is ignored
    absent = ~table["present"].to_numpy()
    assert table.loc[absent, "bbox_i_min"].isna().all() and (table.loc[absent, "voxels"] == 0).all()
    assert list(result.morphometry.columns) == MORPH_COLUMNS


def test_patches_match_naive_baseline_and_stay_inside_labels(synthetic_pair):
    t1, aparc, intensity, seg = synthetic_pair
    result = extract_rois(t1, aparc, roi_size=S, device="cpu")
    patches = result.patches
    assert patches.shape == (N_ROIS, S, S, S) and patches.dtype == np.float32
    wm_mean = intensity[seg == 2].mean()
    assert result.intensity_scale == pytest.approx(1 / wm_mean, rel=1e-6)
    for i, label in ((HIPPO, 17), (ISTHMUS, 1010), (WM, 2)):
        expected = naive_patch(intensity, seg, label, S) / wm_mean
        np.testing.assert_allclose(patches[i], expected, rtol=1e-5, atol=1e-5)
    # a single-voxel ROI fills its patch with its (normalised) intensity
    np.testing.assert_allclose(patches[INSULA], intensity[20, 5, 5] / wm_mean, rtol=1e-6)
    assert not patches[~result.present].any()
    # support: every non-zero patch voxel has an interpolation corner inside the ROI's label
    box_ball = np.where(seg == 1010)
    lo = np.array([w.min() for w in box_ball])
    n = np.array([w.max() for w in box_ball]) - lo + 1
    for idx in np.argwhere(patches[ISTHMUS] != 0):
        pos = lo + idx * (n - 1) / (S - 1)
        corners = {tuple(int(c) for c in np.clip(np.floor(pos) + off, lo, lo + n - 1))
                   for off in np.indices((2, 2, 2)).reshape(3, -1).T}
        assert any(seg[c] == 1010 for c in corners)


def test_normalization_none_keeps_raw_intensity(synthetic_pair):
    t1, aparc, intensity, seg = synthetic_pair
    raw = extract_rois(t1, aparc, roi_size=S, normalization="none")
    wm = extract_rois(t1, aparc, roi_size=S)
    assert raw.intensity_scale == 1.0
    np.testing.assert_allclose(raw.patches[INSULA], intensity[20, 5, 5], rtol=1e-6)
    np.testing.assert_allclose(raw.patches * wm.intensity_scale, wm.patches, rtol=1e-5, atol=1e-5)


def test_fit_mode_keeps_physical_size(make_volumes, save_volumes, tmp_path):
    """In fit mode a smaller ROI covers fewer patch voxels; in stretch mode both fill the patch."""
    intensity, seg = make_volumes()
    small = seg.copy()
    small[(seg == 17)] = 0
    small[12:16, 10:18, 7:11] = 17  # an "atrophied" hippocampus
    big_paths = save_volumes(tmp_path / "big", intensity, seg)
    small_paths = save_volumes(tmp_path / "small", intensity, small)
    extents = np.full(N_ROIS, 24.0)
    fit_big = extract_rois(*big_paths, roi_size=S, mode="fit", fit_extents_mm=extents)
    fit_small = extract_rois(*small_paths, roi_size=S, mode="fit", fit_extents_mm=extents)
    stretch_small = extract_rois(*small_paths, roi_size=S)
    big_cover = np.count_nonzero(fit_big.patches[HIPPO])
    small_cover = np.count_nonzero(fit_small.patches[HIPPO])
    assert small_cover < 0.6 * big_cover
    assert np.count_nonzero(stretch_small.patches[HIPPO]) == S**3
    assert not fit_big.table["clipped"].iloc[HIPPO]
    tight = extract_rois(*big_paths, roi_size=S, mode="fit", fit_extents_mm=np.full(N_ROIS, 6.0))
    assert tight.table["clipped"].iloc[HIPPO] and not tight.table["clipped"].iloc[INSULA]
    packaged = extract_rois(*big_paths, roi_size=S, mode="fit")
    assert packaged.table["present"].sum() == 4 and np.count_nonzero(packaged.patches[HIPPO]) > 0


def test_index_image_and_morphometry(synthetic_pair):
    t1, aparc, intensity, seg = synthetic_pair
    image = roi_index_image(aparc)
    data = np.asanyarray(image.dataobj)
    assert data.dtype == np.uint8 and data.shape == seg.shape
    np.testing.assert_allclose(image.affine, nib.load(str(aparc)).affine)
    assert set(np.unique(data)) == {0, HIPPO + 1, ISTHMUS + 1, INSULA + 1, WM + 1}
    assert (data[seg == 1010] == ISTHMUS + 1).all() and (data[seg == 3] == 0).all()
    morph = roi_morphometry(t1, aparc)
    extraction = extract_rois(t1, aparc, roi_size=S)
    np.testing.assert_array_equal(extraction.index_image().get_fdata(), data)
    assert morph.equals(extraction.morphometry)


def test_reused_output_buffer(synthetic_pair):
    t1, aparc, *_ = synthetic_pair
    buffer = np.full((N_ROIS, S, S, S), 7.0, dtype=np.float32)  # stale content must be overwritten
    result = extract_rois(t1, aparc, roi_size=S, out=buffer)
    assert result.patches is buffer
    np.testing.assert_array_equal(buffer, extract_rois(t1, aparc, roi_size=S).patches)


def test_in_memory_images_and_nifti(synthetic_pair, save_volumes, tmp_path):
    t1, aparc, intensity, seg = synthetic_pair
    from_paths = extract_rois(t1, aparc, roi_size=S)
    in_memory = extract_rois(nib.load(str(t1)), nib.load(str(aparc)), roi_size=S)
    np.testing.assert_array_equal(from_paths.patches, in_memory.patches)
    nifti = extract_rois(*save_volumes(tmp_path / "nii", intensity, seg, ext=".nii.gz"), roi_size=S)
    np.testing.assert_array_equal(from_paths.patches, nifti.patches)


# -- errors --------------------------------------------------------------------------------------

def test_missing_file_names_it(synthetic_pair, tmp_path):
    t1, _, *_ = synthetic_pair
    with pytest.raises(MissingInputError, match="aparc\\+aseg.mgz"):
        extract_rois(t1, tmp_path / "nope" / "aparc+aseg.mgz", roi_size=S)


@pytest.mark.parametrize("which", ["seg", "t1"])
def test_truncated_file_is_missing_input(synthetic_pair, which):
    t1, aparc, *_ = synthetic_pair
    victim = aparc if which == "seg" else t1
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])
    with pytest.raises(MissingInputError, match=str(victim).replace("+", "\\+")):
        extract_rois(t1, aparc, roi_size=S)


def test_garbage_file_is_missing_input(synthetic_pair):
    t1, aparc, *_ = synthetic_pair
    aparc.write_bytes(gzip.compress(b"this is not an image" * 10))
    with pytest.raises(MissingInputError, match="cannot read segmentation"):
        extract_rois(t1, aparc, roi_size=S)


def test_shape_mismatch(synthetic_pair, save_volumes, tmp_path):
    t1, aparc, intensity, seg = synthetic_pair
    other_t1, _ = save_volumes(tmp_path / "other", intensity[:-1], seg[:-1])
    with pytest.raises(ProcessingError, match="shape") as info:
        extract_rois(other_t1, aparc, roi_size=S)
    assert str(aparc) in str(info.value) and str(other_t1) in str(info.value)


def test_affine_mismatch(synthetic_pair, save_volumes, tmp_path):
    t1, aparc, intensity, seg = synthetic_pair
    shifted = np.eye(4)
    shifted[:3, 3] = [5, 0, 0]
    other_t1, _ = save_volumes(tmp_path / "shifted", intensity, seg, affine=shifted)
    with pytest.raises(ProcessingError, match="affine"):
        extract_rois(other_t1, aparc, roi_size=S)


def test_no_known_labels(synthetic_pair, save_volumes, tmp_path):
    t1, aparc, intensity, seg = synthetic_pair
    _, unknown = save_volumes(tmp_path / "unknown", intensity, np.where(seg > 0, 3, 0))
    with pytest.raises(ProcessingError, match="none of the 109") as info:
        extract_rois(t1, unknown, roi_size=S)
    assert str(unknown) in str(info.value)


def test_non_integer_segmentation(synthetic_pair, tmp_path):
    t1, aparc, intensity, seg = synthetic_pair
    bad = tmp_path / "float_seg.nii.gz"
    nib.save(nib.Nifti1Image(seg.astype(np.float32) + 0.5, nib.load(str(aparc)).affine), str(bad))
    with pytest.raises(ProcessingError, match="non-integer"):
        extract_rois(t1, bad, roi_size=S)


def test_bad_options(synthetic_pair):
    t1, aparc, *_ = synthetic_pair
    with pytest.raises(ValueError, match="mode"):
        extract_rois(t1, aparc, roi_size=S, mode="squash")
    with pytest.raises(ValueError, match="roi_size"):
        extract_rois(t1, aparc, roi_size=1)


@pytest.mark.gpu
def test_gpu_matches_cpu(synthetic_pair):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    t1, aparc, *_ = synthetic_pair
    cpu = extract_rois(t1, aparc, roi_size=S, device="cpu")
    gpu = extract_rois(t1, aparc, roi_size=S, device="cuda")
    np.testing.assert_allclose(gpu.patches, cpu.patches, rtol=1e-4, atol=1e-5)
    import pandas as pd

    pd.testing.assert_frame_equal(gpu.table, cpu.table, check_exact=False, rtol=1e-9)
