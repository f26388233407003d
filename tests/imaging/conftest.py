"""Fixtures of the imaging tests: synthetic FreeSurfer-like volumes (the builder, the writer, a saved pair).

Tests receive these as fixtures only; nothing imports this module (``from conftest import ...`` is ambiguous
between the test folders' conftest modules).
"""
from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

# FreeSurfer's conformed orientation (LIA), 1 mm.
AFFINE = np.array([[-1.0, 0, 0, 20], [0, 0, 1, -20], [0, -1, 0, 20], [0, 0, 0, 1]])


def synthetic_volumes(shape=(40, 36, 32), seed=0):
    """(intensity, segmentation) arrays: a few canonical labels of different sizes, one unknown label."""
    rng = np.random.default_rng(seed)
    seg = np.zeros(shape, dtype=np.int32)
    seg[4:36, 4:32, 4:28] = 2  # cerebral white matter (the normalisation reference)
    seg[10:18, 8:20, 6:12] = 17  # Left-Hippocampus: a box
    zz, yy, xx = np.indices(shape)
    seg[(zz - 26) ** 2 + (yy - 20) ** 2 + (xx - 20) ** 2 <= 25] = 1010  # ctx-lh-isthmuscingulate: a ball
    seg[30:33, 25:30, 3:5] = 3  # Left-Cerebral-Cortex: not a canonical ROI (ignored)
    seg[20, 5, 5] = 1035  # ctx-lh-insula: a single voxel
    intensity = rng.uniform(50, 150, size=shape).astype(np.float32)
    intensity[seg == 2] += 20
    return intensity, seg


def save_pair(folder: Path, intensity: np.ndarray, seg: np.ndarray, affine=AFFINE, ext=".mgz"):
    """Save as FreeSurfer would (``T1.mgz``, ``aparc+aseg.mgz``); returns (intensity_path, seg_path)."""
    folder.mkdir(parents=True, exist_ok=True)
    make = nib.MGHImage if ext == ".mgz" else nib.Nifti1Image
    t1 = folder / f"T1{ext}"
    aparc = folder / f"aparc+aseg{ext}"
    nib.save(make(intensity.astype(np.float32), affine), str(t1))
    nib.save(make(seg.astype(np.int32), affine), str(aparc))
    return t1, aparc


@pytest.fixture
def synthetic_pair(tmp_path):
    """Paths (T1.mgz, aparc+aseg.mgz) of a synthetic subject, plus the arrays."""
    intensity, seg = synthetic_volumes()
    t1, aparc = save_pair(tmp_path / "sub-01" / "mri", intensity, seg)
    return t1, aparc, intensity, seg


@pytest.fixture
def make_volumes():
    """The builder ``synthetic_volumes(shape, seed)``."""
    return synthetic_volumes


@pytest.fixture
def save_volumes():
    """The writer ``save_pair(folder, intensity, seg, affine, ext)``."""
    return save_pair
