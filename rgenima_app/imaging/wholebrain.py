"""The whole-brain input of the LLM + whole-brain baseline (the paper's LLM+Med3D): one S³ volume per sample.

The volume is the subject's conformed intensity image (``mri/T1.mgz``, else ``norm.mgz``/``brain.mgz``,
the one ROI extraction reads) treated like one more ROI in ``stretch`` mode: the brain (the union of
the 109 canonical ROIs of ``aparc+aseg.mgz``, zero outside it) is cut to its bounding box, its
intensities are scaled by the factor of the ROI patches (``rois.intensity_scale``: 1 / mean white
matter for ``normalization = "wm"``), and the box is resampled trilinearly to S × S × S with the ROI
resampler. Like MedicalNet's preprocessing (crop to the non-zero region, resize), every brain fills
its cube.

``cached_wholebrain_volume`` keeps the result in ``WORK/wholebrain/<subject>/<key>.npy`` (float32),
keyed by the bytes of both volumes, S, the normalisation and ``WHOLEBRAIN_VERSION``.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import scipy.ndimage as ndi
import torch

from rgenima_app.confinement import check_write
from rgenima_app.environment import resolve_device
from rgenima_app.errors import OutputNotWritableError
from rgenima_app.imaging.freesurfer import FreeSurferSubject
from rgenima_app.imaging.participant import cache_key
from rgenima_app.imaging.resample import resample_box, stretch_positions
from rgenima_app.imaging.rois import intensity_scale
from rgenima_app.imaging.volumes import ImageLike, load_roi_volumes

log = logging.getLogger("rgenima")

#: Bump when the volume changes for the same inputs: old cache entries are then ignored.
WHOLEBRAIN_VERSION = 1


def wholebrain_volume(intensity: ImageLike, seg: ImageLike, size: int = 64, normalization: str = "wm",
                      device: str | torch.device | None = None) -> np.ndarray:
    """The (size, size, size) float32 whole-brain volume of one subject (see the module docstring)."""
    if not isinstance(size, (int, np.integer)) or size < 2:
        raise ValueError(f"size must be an integer >= 2, got {size!r}")
    volumes = load_roi_volumes(intensity, seg)
    scale = intensity_scale(volumes, normalization)
    brain = volumes.index > 0
    box = ndi.find_objects(brain.astype(np.uint8))[0]  # load_roi_volumes refuses a segmentation without ROIs
    device = resolve_device(device)
    crop = torch.from_numpy(volumes.intensity[box] * brain[box]).to(device)
    positions = tuple(stretch_positions(s.stop - s.start, size, device) for s in box)
    out = torch.empty((size, size, size), dtype=torch.float32, device=device)
    return resample_box(crop, positions, out=out, scale=scale).cpu().numpy()


def cached_wholebrain_volume(freesurfer: FreeSurferSubject, work_dir: str | os.PathLike, size: int = 64,
                             normalization: str = "wm", device: str | torch.device | None = None) -> Path:
    """The cached whole-brain volume (.npy) of a FreeSurfer subject, made when missing."""
    intensity, seg = freesurfer.intensity, freesurfer.segmentation
    key = cache_key(seg, intensity, size, f"wholebrain-{WHOLEBRAIN_VERSION}", normalization)
    entry = Path(work_dir) / "wholebrain" / freesurfer.name / f"{key}.npy"
    if entry.is_file():
        return entry
    volume = wholebrain_volume(intensity, seg, size, normalization, device)
    check_write(entry)
    tmp = entry.with_name(f".tmp-{os.getpid()}-{entry.name}")  # written whole, then renamed
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        np.save(tmp, volume)
        os.replace(tmp, entry)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputNotWritableError(f"cannot write the whole-brain cache {entry}: {exc.strerror or exc}",
                                     hint="check free space and permissions of the work directory (-w)") from exc
    log.info("%s: whole-brain volume %d^3 made from %s", freesurfer.name, size, intensity.name)
    return entry
