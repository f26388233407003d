"""Extraction of the 109 canonical ROIs: morphometry, the ROI index image and S x S x S patches.

Public API (docs/imaging.md):

- ``extract_rois(intensity, seg, roi_size=96, mode="stretch", normalization="wm", device=None)``
  -> ``RoiExtraction`` with ``patches`` (109 x S x S x S float32, canonical order, absent ROI =
  zero patch), ``table`` (one row per ROI) and ``index_image()``;
- ``roi_morphometry(intensity, seg)`` -> the per-ROI table alone (no resampling);
- ``roi_index_image(seg)`` -> the ROI index image (``dseg``: 1..109 inside ROIs, 0 elsewhere);
- ``intensity_scale(volumes, normalization)`` -> the factor applied to the patch intensities.

How it stays fast: the label volume is mapped once to canonical indices (one table lookup), and
one ``scipy.ndimage.find_objects`` pass gives all 109 bounding boxes; everything after that works
inside the boxes only (masks, statistics, resampling), never on the full volume per label. Each
patch is the masked intensity of its box resampled trilinearly with three matrix products
(``resample.py``), in torch, on the GPU when one is available.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import nibabel as nib
import numpy as np
import pandas as pd
import scipy.ndimage as ndi
import torch

from rgenima_app.environment import resolve_device
from rgenima_app.errors import ProcessingError
from rgenima_app.imaging.resample import centred_positions, resample_box, stretch_positions
from rgenima_app.imaging.roi_table import N_ROIS, load_roi_table, roi_fit_extents_mm
from rgenima_app.imaging.volumes import ImageLike, RoiVolumes, image_name, load_image, load_roi_volumes, roi_index_array

log = logging.getLogger("rgenima")

MODES = ("stretch", "fit")
NORMALIZATIONS = ("wm", "none")
#: Cerebral white matter (left, right): the reference tissue of the "wm" normalisation.
WM_LABELS = (2, 41)
BBOX_COLUMNS = ["bbox_i_min", "bbox_i_max", "bbox_j_min", "bbox_j_max", "bbox_k_min", "bbox_k_max"]
#: Columns of the morphometry table (``*_desc-rois_morph.tsv``), in order.
MORPH_COLUMNS = ["index", "name", "label", "present", "voxels", "volume_mm3", *BBOX_COLUMNS,
                 "intensity_mean", "intensity_sd"]

Box = tuple[slice, slice, slice]


@dataclass
class RoiExtraction:
    """The result of ``extract_rois``.

    ``patches[i]`` is ROI ``table.index[i]`` (canonical order); ``intensity_scale`` is the factor
    that was applied to the intensities of the patches (1 / reference intensity).
    """

    patches: np.ndarray
    table: pd.DataFrame
    roi_size: int
    mode: str
    normalization: str
    intensity_scale: float
    volumes: RoiVolumes = field(repr=False)

    @property
    def present(self) -> np.ndarray:
        """Boolean vector (109): which ROIs exist in this subject (absent ones have zero patches)."""
        return self.table["present"].to_numpy(dtype=bool)

    @property
    def morphometry(self) -> pd.DataFrame:
        """The morphometry columns of ``table`` (what ``*_desc-rois_morph.tsv`` holds)."""
        return self.table[MORPH_COLUMNS].copy()

    def index_image(self) -> nib.Nifti1Image:
        """The ROI index image (canonical index per voxel, 0 outside) on the segmentation's grid."""
        return _index_image(self.volumes.index, self.volumes.affine)


def _check_options(roi_size: int, mode: str, normalization: str) -> None:
    if not isinstance(roi_size, (int, np.integer)) or roi_size < 2:
        raise ValueError(f"roi_size must be an integer >= 2, got {roi_size!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")


def roi_boxes(index: np.ndarray) -> list[Box | None]:
    """Bounding box (slices) of every canonical ROI, found in one pass; None for an absent ROI."""
    return ndi.find_objects(index, max_label=N_ROIS)


def _masked_boxes(volumes: RoiVolumes, boxes: list[Box | None], device: torch.device):
    """Per ROI: its box of intensity with zeros outside the ROI, and voxel count, sum, sum of squares."""
    intensity = torch.from_numpy(volumes.intensity).to(device)
    index = torch.from_numpy(volumes.index).to(device)
    crops: list[torch.Tensor | None] = []
    sums = torch.zeros(N_ROIS, 3, dtype=torch.float64, device=device)
    for i, box in enumerate(boxes):
        if box is None:
            crops.append(None)
            continue
        inside = index[box] == (i + 1)
        crop = intensity[box] * inside
        sums[i, 0] = inside.sum()
        sums[i, 1] = crop.sum(dtype=torch.float64)
        sums[i, 2] = (crop.double() ** 2).sum()
        crops.append(crop)
    return crops, sums.cpu().numpy()


def _table(volumes: RoiVolumes, boxes: list[Box | None], sums: np.ndarray) -> pd.DataFrame:
    roi = load_roi_table()
    table = roi[["index", "name", "label"]].copy()
    count = sums[:, 0]
    table["present"] = count > 0
    table["voxels"] = count.astype(np.int64)
    table["volume_mm3"] = count * volumes.voxel_volume_mm3
    bounds = np.full((N_ROIS, 6), -1, dtype=np.int64)
    for i, box in enumerate(boxes):
        if box is not None:
            bounds[i] = [v for s in box for v in (s.start, s.stop - 1)]  # inclusive voxel coordinates
    for j, column in enumerate(BBOX_COLUMNS):
        table[column] = pd.array(np.where(table["present"], bounds[:, j], None), dtype="Int64")
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = sums[:, 1] / count
        var = np.maximum(sums[:, 2] / count - mean**2, 0.0)
    table["intensity_mean"] = np.where(count > 0, mean, np.nan)
    table["intensity_sd"] = np.where(count > 0, np.sqrt(var), np.nan)
    return table


def _intensity_scale(normalization: str, table: pd.DataFrame, sums: np.ndarray, name: str) -> float:
    """1 / reference intensity: mean of cerebral white matter ("wm"), or 1 ("none")."""
    if normalization == "none":
        return 1.0
    wm = table["label"].isin(WM_LABELS).to_numpy()
    count, total = sums[wm, 0].sum(), sums[wm, 1].sum()
    if count == 0 or total <= 0:  # no white matter labelled: fall back to all ROI voxels
        count, total = sums[:, 0].sum(), sums[:, 1].sum()
        log.warning("%s: no cerebral white matter (labels 2, 41); normalising by the mean over all ROIs", name)
    if total <= 0:
        raise ProcessingError(f"intensity image {name} is zero (or negative) inside every ROI",
                              hint="give the T1w-like intensity volume of the subject (mri/T1.mgz or norm.mgz)")
    return float(count / total)


def _measure(volumes: RoiVolumes, device: torch.device):
    """(boxes, masked crops, per-ROI sums, table) of an intensity volume and its ROI index."""
    boxes = roi_boxes(volumes.index)
    crops, sums = _masked_boxes(volumes, boxes, device)
    return boxes, crops, sums, _table(volumes, boxes, sums)


def intensity_scale(volumes: RoiVolumes, normalization: str) -> float:
    """The factor ``extract_rois`` multiplies the patch intensities by (``normalization`` "wm": 1 / mean
    intensity of the cerebral white matter; "none": 1), for other images of the same subject to share it."""
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    _, _, sums, table = _measure(volumes, torch.device("cpu"))
    return _intensity_scale(normalization, table, sums, volumes.intensity_name)


def roi_morphometry(intensity: ImageLike, seg: ImageLike) -> pd.DataFrame:
    """Per-ROI morphometry (no patches): columns ``MORPH_COLUMNS``, one row per canonical ROI.

    ``voxels``: number of voxels with the ROI's label; ``volume_mm3``: voxels x voxel volume;
    ``bbox_*``: inclusive bounding box in voxel coordinates of the segmentation (n/a when absent);
    ``intensity_mean``/``intensity_sd``: mean and (population) standard deviation of the intensity
    image over the ROI, in the image's own units.
    """
    return _measure(load_roi_volumes(intensity, seg), torch.device("cpu"))[3]


def _index_image(index: np.ndarray, affine: np.ndarray) -> nib.Nifti1Image:
    image = nib.Nifti1Image(np.asarray(index, dtype=np.uint8), affine)
    image.header.set_xyzt_units("mm")
    image.header.set_intent("label", name="rgenima ROI index")
    return image


def roi_index_image(seg: ImageLike) -> nib.Nifti1Image:
    """The ROI index image (``dseg``) of a segmentation: each voxel's canonical ROI index 1..109, 0 elsewhere.

    Same grid and affine as ``seg`` (for FreeSurfer: the conformed T1 space of the subject).
    """
    seg_img, seg_data = load_image(seg, "segmentation")
    return _index_image(roi_index_array(seg_data, image_name(seg)), seg_img.affine)


def _patch_positions(mode: str, box: Box, roi_size: int, extent_mm: float,
                     zooms: tuple[float, float, float], device: torch.device):
    """Sampling positions (box voxel units) per axis, and whether the ROI exceeds the sampled field."""
    if mode == "stretch":
        return tuple(stretch_positions(s.stop - s.start, roi_size, device) for s in box), False
    positions, clipped = [], False
    for s, zoom in zip(box, zooms):
        n = s.stop - s.start
        p = centred_positions(n, roi_size, extent_mm / roi_size / zoom, device)
        clipped |= bool(p[0] > 0 or p[-1] < n - 1)  # the outermost ROI voxels are not sampled
        positions.append(p)
    return tuple(positions), clipped


def _output(out: np.ndarray | None, roi_size: int, device: torch.device) -> torch.Tensor:
    shape = (N_ROIS, roi_size, roi_size, roi_size)
    if out is None:
        return torch.empty(shape, dtype=torch.float32, device=device)  # every patch is written below
    if device.type != "cpu":
        raise ValueError("out= is for CPU extraction; on a GPU the patches are copied back once anyway")
    if out.shape != shape or out.dtype != np.float32 or not out.flags["C_CONTIGUOUS"]:
        raise ValueError(f"out must be a C-contiguous float32 array of shape {shape}")
    return torch.from_numpy(out)


def extract_rois(intensity: ImageLike, seg: ImageLike, roi_size: int = 96, mode: str = "stretch",
                 normalization: str = "wm", device: str | torch.device | None = None,
                 fit_extents_mm: np.ndarray | None = None, out: np.ndarray | None = None) -> RoiExtraction:
    """Extract the 109 canonical ROIs of one subject.

    Parameters
    ----------
    intensity, seg
        The intensity volume (FreeSurfer ``mri/T1.mgz`` or ``norm.mgz``) and the segmentation
        (``mri/aparc+aseg.mgz``) on the same grid: paths or nibabel images.
    roi_size
        S, the patch edge in voxels (the paper: 96).
    mode
        ``"stretch"`` (default, the paper): each ROI's bounding box is resampled to S^3, so every
        ROI fills its patch whatever its size. ``"fit"``: each ROI is sampled on a fixed physical
        grid centred on its box (edge ``fit_extents_mm[i]`` mm, the same for every subject), so a
        smaller (atrophied) ROI stays smaller in its patch; ROIs larger than the grid are cut at
        its edge and flagged in ``table.clipped``.
    normalization
        ``"wm"`` (default): intensities are divided by the mean intensity of the cerebral white
        matter (labels 2 and 41), so white matter is ~1 whatever the scanner scaling; ``"none"``:
        raw intensities. The morphometry columns always report raw intensities.
    device
        torch device for resampling; None/"auto" uses the GPU when available.
    fit_extents_mm
        Per-ROI grid edge in mm for ``mode="fit"`` (default: the packaged table, see
        ``roi_table.roi_fit_extents_mm``).
    out
        Optional float32 array (109, S, S, S) to write the patches into (CPU only): reusing one buffer
        over many subjects saves allocating (and page-faulting) ~385 MB per subject at S = 96.

    Each patch is the intensity inside the ROI (zero outside its label) within its bounding box,
    resampled trilinearly; since the input is zero outside the label, every non-zero patch voxel is
    a weighted sum of voxels of that label only. Patch axes are the segmentation's voxel axes.
    """
    _check_options(roi_size, mode, normalization)
    device = resolve_device(device)
    volumes = load_roi_volumes(intensity, seg)
    boxes, crops, sums, table = _measure(volumes, device)
    scale = _intensity_scale(normalization, table, sums, volumes.intensity_name)
    if mode == "fit":
        extents = roi_fit_extents_mm() if fit_extents_mm is None else np.asarray(fit_extents_mm, dtype=float)
        if extents.shape != (N_ROIS,) or not np.all(extents > 0):
            raise ValueError("fit_extents_mm must hold 109 positive extents (mm), one per canonical ROI")
    else:
        extents = np.zeros(N_ROIS)

    patches = _output(out, roi_size, device)
    clipped = np.zeros(N_ROIS, dtype=bool)
    for i, (box, crop) in enumerate(zip(boxes, crops)):
        if crop is None:
            patches[i].zero_()
            continue
        positions, clipped[i] = _patch_positions(mode, box, roi_size, extents[i], volumes.zooms, device)
        resample_box(crop, positions, out=patches[i], scale=scale)
    table["clipped"] = clipped
    absent = table.loc[~table["present"], "name"].tolist()
    if absent:
        log.info("%s: %d ROI(s) absent (zero patches): %s", volumes.segmentation_name, len(absent), ", ".join(absent))
    return RoiExtraction(patches=out if out is not None else patches.cpu().numpy(), table=table, roi_size=int(roi_size), mode=mode,
                         normalization=normalization, intensity_scale=scale, volumes=volumes)
