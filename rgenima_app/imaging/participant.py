"""The imaging part of the participant level: FreeSurfer subject -> ROIs -> derivatives.

``process_participant_imaging`` makes sure the FreeSurfer subject exists (reuse or recon-all),
extracts the 109 ROIs and caches the result in the work dir, keyed by the content of the
segmentation and intensity volumes and the extraction options: a rerun on unchanged inputs reads
the cache instead of extracting again. ``write_participant_imaging`` writes the derivatives
(``*_desc-rois_dseg.nii.gz`` + sidecar, ``*_desc-rois_morph.tsv`` + sidecar). Patches never go to
the output dataset: they stay in the work-dir cache (``patches.npy``, 109 x S^3 float32).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import nibabel as nib
import numpy as np
import pandas as pd

from rgenima_app.bids.tsv import read_tsv, to_tsv
from rgenima_app.confinement import check_write
from rgenima_app.errors import OutputNotWritableError
from rgenima_app.imaging.freesurfer import FreeSurferOptions, FreeSurferSubject, ensure_freesurfer_subject
from rgenima_app.imaging.roi_table import roi_fit_extents_mm
from rgenima_app.imaging.rois import BBOX_COLUMNS, MORPH_COLUMNS, extract_rois

log = logging.getLogger("rgenima")

#: Bump when extraction changes its output for the same inputs: old cache entries are then ignored.
EXTRACTION_VERSION = 1
CACHE_FILES = ("patches.npy", "table.tsv", "dseg.nii.gz", "cache.json")

MORPH_SIDECAR = {
    "Description": "Morphometry of the 109 canonical rgenima ROIs (rows in the order of desc-rois_dseg.tsv)",
    "index": {"Description": "canonical ROI index (1..109), as in desc-rois_dseg.tsv"},
    "name": {"Description": "FreeSurfer 7 name of the ROI"},
    "label": {"Description": "FreeSurfer label value in aparc+aseg"},
    "present": {"Description": "whether the ROI has at least one voxel in this subject"},
    "voxels": {"Description": "number of voxels labelled with the ROI in aparc+aseg"},
    "volume_mm3": {"Description": "voxels times voxel volume (no partial-volume correction)", "Units": "mm^3"},
    **{c: {"Description": f"inclusive bounding box, voxel coordinate {c[5]} "
                          f"({'first' if c.endswith('min') else 'last'} voxel), in the dseg image's grid"}
       for c in BBOX_COLUMNS},
    "intensity_mean": {"Description": "mean of the intensity volume over the ROI (its own units)"},
    "intensity_sd": {"Description": "standard deviation (population) of the intensity volume over the ROI"},
}


@dataclass
class ParticipantImaging:
    """What the imaging stage produced for one sample."""

    freesurfer: FreeSurferSubject
    dseg: nib.Nifti1Image  # canonical ROI index per voxel, FreeSurfer conformed T1 space
    morph: pd.DataFrame  # MORPH_COLUMNS, one row per ROI
    patches_path: Path  # (109, S, S, S) float32 .npy in the work dir; np.load(..., mmap_mode="r")
    cache_hit: bool
    roi_size: int
    mode: str
    t1w_files: tuple[Path, ...]

    def load_patches(self, mmap: bool = True) -> np.ndarray:
        return np.load(self.patches_path, mmap_mode="r" if mmap else None)


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cache_key(segmentation: Path, intensity: Path, roi_size: int, mode: str, normalization: str) -> str:
    """Content key of an extraction: input bytes, options and the extraction version."""
    parts = {
        "segmentation": _file_digest(segmentation),
        "intensity": _file_digest(intensity),
        "roi_size": int(roi_size), "mode": mode, "normalization": normalization,
        "version": EXTRACTION_VERSION,
    }
    if mode == "fit":
        parts["fit_extents_mm"] = roi_fit_extents_mm().tolist()
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


def _read_table(path: Path) -> pd.DataFrame:
    table = read_tsv(path, na_values=["n/a"], keep_default_na=False)
    table["present"] = table["present"].astype(bool)
    for column in BBOX_COLUMNS:
        table[column] = table[column].astype("Int64")
    return table


def _write_cache(entry: Path, extraction) -> None:
    """Write the cache entry into a temporary folder, then rename it: a half-written entry never exists."""
    check_write(entry)
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=entry.parent, prefix=".tmp-"))
    try:
        np.save(tmp / "patches.npy", extraction.patches)
        to_tsv(extraction.morphometry, tmp / "table.tsv", na_rep="n/a")
        nib.save(extraction.index_image(), str(tmp / "dseg.nii.gz"))
        (tmp / "cache.json").write_text(json.dumps({
            "segmentation": extraction.volumes.segmentation_name, "intensity": extraction.volumes.intensity_name,
            "roi_size": extraction.roi_size, "mode": extraction.mode, "normalization": extraction.normalization,
            "intensity_scale": extraction.intensity_scale, "version": EXTRACTION_VERSION}, indent=2))
        try:
            os.replace(tmp, entry)
        except OSError:
            if not entry.is_dir():
                raise
            shutil.rmtree(tmp)  # a concurrent run (another rank) made it meanwhile: same key, same content
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise OutputNotWritableError(f"cannot write the ROI cache {entry}: {exc.strerror or exc}",
                                     hint="check free space and permissions of the work directory (-w)") from exc
    for old in entry.parent.iterdir():  # one entry per sample: drop those of earlier inputs/options
        if old != entry and not old.name.startswith(".tmp-"):
            shutil.rmtree(old, ignore_errors=True)


def process_participant_imaging(
    subject: str,
    session: str | None,
    t1w_files: Sequence[str | os.PathLike] | str | os.PathLike,
    freesurfer: FreeSurferOptions,
    work_dir: str | os.PathLike,
    *,
    roi_size: int = 96,
    mode: str = "stretch",
    normalization: str = "wm",
    device: str | None = None,
) -> ParticipantImaging:
    """FreeSurfer (reuse or recon-all, as ``freesurfer`` says) and ROI extraction of one sample, cached in
    ``work_dir/rois``.

    Raises the errors of ``ensure_freesurfer_subject`` (66, 126, 127, 1) and of ``extract_rois``
    (66 unreadable volume, 1 mismatched volumes or no known label); nothing is written to the
    output dataset here.
    """
    t1w = (t1w_files,) if isinstance(t1w_files, (str, os.PathLike)) else tuple(t1w_files)
    t1w = tuple(Path(p) for p in t1w)
    fs = ensure_freesurfer_subject(subject, session, t1w, freesurfer, Path(work_dir) / "freesurfer")
    segmentation, intensity = fs.segmentation, fs.intensity
    entry = Path(work_dir) / "rois" / fs.name / cache_key(segmentation, intensity, roi_size, mode, normalization)
    if all((entry / f).is_file() for f in CACHE_FILES):
        log.info("%s: ROI patches reused from %s", fs.name, entry)
        dseg = nib.load(str(entry / "dseg.nii.gz"))
        return ParticipantImaging(fs, dseg, _read_table(entry / "table.tsv"), entry / "patches.npy",
                                  cache_hit=True, roi_size=roi_size, mode=mode, t1w_files=t1w)
    extraction = extract_rois(intensity, segmentation, roi_size=roi_size, mode=mode,
                              normalization=normalization, device=device)
    _write_cache(entry, extraction)
    log.info("%s: %d/109 ROIs extracted at %d^3 (%s) from %s", fs.name, int(extraction.present.sum()),
             roi_size, mode, intensity.name)
    return ParticipantImaging(fs, extraction.index_image(), extraction.morphometry, entry / "patches.npy",
                              cache_hit=False, roi_size=roi_size, mode=mode, t1w_files=t1w)


def participant_imaging_paths(writer, subject: str, session: str | None = None) -> dict[str, Path]:
    """The ROI derivatives of one sample: ``dseg`` (.nii.gz) and ``morph`` (.tsv); sidecars beside them."""
    subject = subject.removeprefix("sub-")
    session = session.removeprefix("ses-") if session else None
    return {"dseg": writer.path(subject, session, datatype="anat", desc="rois", suffix="dseg", extension=".nii.gz"),
            "morph": writer.path(subject, session, datatype="anat", desc="rois", suffix="morph", extension=".tsv")}


def write_participant_imaging(result: ParticipantImaging, writer, subject: str,
                              session: str | None = None, provenance: str | None = None) -> dict[str, Path]:
    """Write ``*_desc-rois_dseg.nii.gz`` (+ .json with Sources) and ``*_desc-rois_morph.tsv`` (+ .json).

    ``writer`` is a ``rgenima_app.bids.derivatives.DerivativesWriter``; writes are atomic. ``provenance``
    (``rgenima_app.provenance``) is recorded in both sidecars.
    """
    sources = [writer.source_uri(p) for p in result.t1w_files]
    sources += [writer.source_uri(result.freesurfer.segmentation)]
    paths = participant_imaging_paths(writer, subject, session)
    dseg_path, morph_path = paths["dseg"], paths["morph"]
    dseg_sidecar = {
        "Description": "Canonical rgenima ROI index (1..109, see desc-rois_dseg.tsv at the dataset root; "
                       "0 outside the ROIs) in the FreeSurfer conformed T1 space of the subject",
        "Sources": sources,
        "FreeSurferSubject": result.freesurfer.name,
    }
    morph_sidecar = dict(MORPH_SIDECAR, Sources=[writer.source_uri(result.freesurfer.segmentation),
                                                 writer.source_uri(result.freesurfer.intensity)])
    if provenance is not None:
        dseg_sidecar["ProvenanceKey"] = morph_sidecar["ProvenanceKey"] = provenance
    with writer.output_set():  # the dseg and the morphometry table: both or neither
        writer.write_nifti(dseg_path, result.dseg, sidecar=dseg_sidecar)
        writer.write_tsv(morph_path, result.morph[MORPH_COLUMNS], sidecar=morph_sidecar)
    return {"dseg": dseg_path, "morph": morph_path}
