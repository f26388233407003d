"""ROI images on another grid: the desc-rois_dseg labels (FreeSurfer's conformed 1 mm grid) moved onto a
participant's T1w grid through world coordinates.

FreeSurfer's conformed volumes keep the scanner coordinates of the T1w they were made from, so a voxel of
the T1w and the conformed voxel nearest to the same world point hold the same tissue. Labels are moved by
nearest neighbour: an ROI index is a name, never averaged with its neighbours.
"""
from __future__ import annotations

import nibabel as nib
import numpy as np
from nibabel.processing import resample_from_to


def labels_on_grid(labels: nib.spatialimages.SpatialImage,
                   reference: nib.spatialimages.SpatialImage) -> nib.Nifti1Image:
    """``labels`` (an integer label image) resampled by nearest neighbour onto the grid of ``reference``
    (its first three axes: a 4-D T1w gives its 3-D grid); 0 where the reference grid leaves the labels."""
    grid = (tuple(reference.shape[:3]), reference.affine)
    source = nib.Nifti1Image(np.asarray(labels.dataobj).astype(np.int32), labels.affine)
    moved = resample_from_to(source, grid, order=0, mode="constant", cval=0)
    image = nib.Nifti1Image(np.rint(np.asarray(moved.dataobj)).astype(np.int16), reference.affine)
    image.header.set_xyzt_units("mm")
    return image
