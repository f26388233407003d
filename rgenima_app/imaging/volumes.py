"""Loading and checking the two volumes of ROI extraction: an intensity image and a FreeSurfer segmentation.

Every failure names the file: a missing, unreadable or corrupt file is a ``MissingInputError``
(exit 66); images that do not belong together (shape, affine) or a segmentation with none of the
canonical labels is a ``ProcessingError`` (exit 1).
"""
from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import nibabel as nib
import numpy as np

from rgenima_app.errors import MissingInputError, ProcessingError
from rgenima_app.imaging.roi_table import N_ROIS, roi_labels

ImageLike = Union[str, os.PathLike, nib.spatialimages.SpatialImage]

# Affines of images that share a voxel grid agree to float32 precision of the header.
_AFFINE_ATOL = 1e-3


def image_name(image: ImageLike) -> str:
    """The file an image came from (for messages), or ``<in-memory image>``."""
    if isinstance(image, (str, os.PathLike)):
        return str(image)
    return image.get_filename() or "<in-memory image>"


def load_image(image: ImageLike, role: str) -> tuple[nib.spatialimages.SpatialImage, np.ndarray]:
    """Open ``image`` (a path or a nibabel image) and read its voxels, as a 3-D array.

    ``role`` ("intensity", "segmentation") is used in messages. A trailing singleton 4th
    dimension is dropped.
    """
    name = image_name(image)
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        if not path.is_file():
            raise MissingInputError(f"{role} image not found: {path}",
                                    hint="check the path (for FreeSurfer subjects: <subjects_dir>/<subject>/mri/)")
        try:
            image = nib.load(str(path))
        except Exception as exc:  # nibabel raises many kinds for a damaged header
            raise _unreadable(role, name, exc) from exc
    try:
        data = np.asanyarray(image.dataobj)
    except Exception as exc:  # truncated gzip (EOFError, zlib.error), short data (ValueError), I/O (OSError)
        raise _unreadable(role, name, exc) from exc
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise ProcessingError(f"{role} image {name} has shape {data.shape}; a 3-D volume is needed",
                              hint="give a single 3-D T1w/segmentation volume")
    return image, data


def _unreadable(role: str, name: str, exc: BaseException) -> MissingInputError:
    kind = "truncated or corrupt" if isinstance(exc, (EOFError, zlib.error)) else "unreadable"
    return MissingInputError(
        f"cannot read {role} image {name}: {kind} ({type(exc).__name__}: {exc})",
        hint="replace the file (for FreeSurfer outputs: rerun recon-all for this subject, or remove the "
             "subject folder so that rgenima runs it again)",
    )


@dataclass
class RoiVolumes:
    """An intensity volume and its ROI index volume on the same voxel grid.

    ``index`` holds each voxel's canonical ROI index (1..109, see ``roi_table``) and 0 elsewhere.
    """

    intensity: np.ndarray  # float32, 3-D
    index: np.ndarray  # uint8, same shape
    affine: np.ndarray  # 4x4 voxel -> scanner mm (of the segmentation)
    zooms: tuple[float, float, float]  # voxel size in mm
    intensity_name: str
    segmentation_name: str

    @property
    def voxel_volume_mm3(self) -> float:
        return float(np.prod(self.zooms))


def label_lookup(low: int = 0, high: int | None = None) -> np.ndarray:
    """Table from FreeSurfer label ``low + k`` to canonical ROI index (0 for labels outside the 109).

    It covers labels ``low..high`` (default: 0 to the largest canonical label).
    """
    labels = np.asarray(roi_labels())
    high = int(labels.max()) if high is None else max(int(high), int(labels.max()))
    lut = np.zeros(high - low + 1, dtype=np.uint8)
    lut[labels - low] = np.arange(1, N_ROIS + 1, dtype=np.uint8)
    return lut


def roi_index_array(seg_data: np.ndarray, name: str) -> np.ndarray:
    """Map a FreeSurfer label array to canonical ROI indices (uint8) in one table lookup."""
    if not np.issubdtype(seg_data.dtype, np.integer):
        rounded = np.rint(seg_data)
        if not np.array_equal(rounded, seg_data):
            raise ProcessingError(f"segmentation {name} holds non-integer values: it is not a label image",
                                  hint="give FreeSurfer's mri/aparc+aseg.mgz (or a NIfTI copy of it)")
        seg_data = rounded.astype(np.int64)
    low = min(int(seg_data.min()), 0)
    lut = label_lookup(low, int(seg_data.max()))
    # fancy indexing (also on MGH's big-endian ints) is ~5x faster than np.take(mode="clip")
    return lut[seg_data - low] if low else lut[seg_data]


def load_roi_volumes(intensity: ImageLike, seg: ImageLike) -> RoiVolumes:
    """Load and cross-check an intensity image and its segmentation (aparc+aseg)."""
    seg_name, int_name = image_name(seg), image_name(intensity)
    seg_img, seg_data = load_image(seg, "segmentation")
    int_img, int_data = load_image(intensity, "intensity")
    if seg_data.shape != int_data.shape:
        raise ProcessingError(
            f"segmentation {seg_name} has shape {seg_data.shape} but intensity image {int_name} has {int_data.shape}",
            hint="both must be on the same voxel grid, e.g. FreeSurfer's mri/aparc+aseg.mgz with mri/T1.mgz or norm.mgz",
        )
    if not np.allclose(seg_img.affine, int_img.affine, atol=_AFFINE_ATOL):
        raise ProcessingError(
            f"segmentation {seg_name} and intensity image {int_name} have different affines "
            f"(voxel-to-world transforms); they are not in the same space",
            hint="use the segmentation and the intensity volume of the same FreeSurfer subject (conformed space)",
        )
    index = roi_index_array(seg_data, seg_name)
    if not index.any():
        raise ProcessingError(
            f"segmentation {seg_name} contains none of the 109 canonical FreeSurfer labels",
            hint="give FreeSurfer's mri/aparc+aseg.mgz (Desikan-Killiany cortex + aseg labels)",
        )
    zooms = tuple(float(z) for z in seg_img.header.get_zooms()[:3])
    return RoiVolumes(
        intensity=np.asarray(int_data, dtype=np.float32),
        index=index,
        affine=np.asarray(seg_img.affine, dtype=np.float64),
        zooms=zooms,  # type: ignore[arg-type]
        intensity_name=int_name,
        segmentation_name=seg_name,
    )
